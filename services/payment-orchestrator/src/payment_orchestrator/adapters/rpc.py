"""Request/reply to connectors (OTP, status sync) and the ledger (refund holds), over
RabbitMQ: one client per routing key, opened on first use."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, TypeAdapter

from fluxpay_common.messages import (
    ErrorBody,
    Message,
    ProviderPaymentUpdate,
    QueryReply,
    ReserveRefund,
)
from fluxpay_common.rpc import RpcClient, RpcUnavailable
from fluxpay_common.topology import COMMANDS, LEDGER_QUERIES_KEY, connector_key


class _ErrorReply(BaseModel):
    """What a connector answers when it could not handle a request (a crash, no answer)."""

    error: ErrorBody


# Unambiguous: an update has no `error`, an error reply no `payment_id`.
_CONNECTOR_REPLY: TypeAdapter[ProviderPaymentUpdate | _ErrorReply] = TypeAdapter(
    ProviderPaymentUpdate | _ErrorReply
)


class RpcClients:
    def __init__(self, rabbitmq_url: str, timeout: float) -> None:
        self._url = rabbitmq_url
        self._timeout = timeout
        self._clients: dict[str, RpcClient] = {}
        self._lock = asyncio.Lock()

    async def _client(self, routing_key: str) -> RpcClient:
        async with self._lock:
            client = self._clients.get(routing_key)
            if client is None:
                client = RpcClient(self._url, COMMANDS.name, routing_key)
                await client.start()
                self._clients[routing_key] = client
        return client

    async def call_connector(self, provider: str, request: Message) -> ProviderPaymentUpdate:
        client = await self._client(connector_key(provider))
        reply = await client.call(request, _CONNECTOR_REPLY, self._timeout)
        if isinstance(reply, _ErrorReply):
            # Answered at once but not handled: to the caller, the provider is unavailable.
            raise RpcUnavailable(f"connector {provider}: {reply.error.code}")
        update: ProviderPaymentUpdate = reply
        return update

    async def reserve_refund(self, request: ReserveRefund) -> tuple[bool, int]:
        client = await self._client(LEDGER_QUERIES_KEY)
        reply: QueryReply = await client.call(request, QueryReply, self._timeout)
        if reply.error is not None:
            raise RpcUnavailable(reply.error.message)
        return bool(reply.data["held"]), int(reply.data["available_minor"])

    async def close(self) -> None:
        for client in self._clients.values():
            await client.stop()
