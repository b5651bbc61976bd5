"""`fluxpay-orchestrator`: owns payments; consumes commands and provider updates."""

from __future__ import annotations

import asyncio
from importlib import resources

from fluxpay_common import runtime
from fluxpay_common.consumer import subscribe
from fluxpay_common.messages import (
    Message,
    ProviderPaymentUpdate,
    QueryReply,
    ReserveRefund,
    orchestrator_command_adapter,
    provider_update_adapter,
)
from fluxpay_common.rpc import RpcClient, RpcUnavailable
from fluxpay_common.topology import (
    COMMANDS,
    LEDGER_QUERIES_KEY,
    ORCHESTRATOR_COMMANDS,
    ORCHESTRATOR_PROVIDER_UPDATES,
    connector_key,
)
from payment_orchestrator.service import Orchestrator
from payment_orchestrator.settings import Settings

SERVICE = "orchestrator"


class RpcClients:
    """One request/reply client per routing key, opened on first use: connectors (OTP,
    status sync) and the ledger (a refund's hold on the available balance)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[str, RpcClient] = {}
        self._lock = asyncio.Lock()

    async def _client(self, routing_key: str) -> RpcClient:
        async with self._lock:
            client = self._clients.get(routing_key)
            if client is None:
                client = RpcClient(
                    self._settings.rabbitmq_url.get_secret_value(), COMMANDS.name, routing_key
                )
                await client.start()
                self._clients[routing_key] = client
        return client

    async def call(self, provider: str, request: Message) -> ProviderPaymentUpdate:
        client = await self._client(connector_key(provider))
        update: ProviderPaymentUpdate = await client.call(
            request, ProviderPaymentUpdate, self._settings.connector_rpc_timeout
        )
        return update

    async def reserve_refund(self, request: ReserveRefund) -> tuple[bool, int]:
        client = await self._client(LEDGER_QUERIES_KEY)
        reply: QueryReply = await client.call(
            request, QueryReply, self._settings.connector_rpc_timeout
        )
        if reply.error is not None:
            raise RpcUnavailable(reply.error.message)
        return bool(reply.data["held"]), int(reply.data["available_minor"])

    async def close(self) -> None:
        for client in self._clients.values():
            await client.stop()


async def _main() -> None:
    settings = Settings()
    clients = RpcClients(settings)
    holder: dict[str, Orchestrator] = {}

    async def register(ctx: runtime.WorkerContext) -> None:
        orchestrator = Orchestrator(ctx.pool, settings, clients.call, clients.reserve_refund)
        holder["orchestrator"] = orchestrator
        common = {
            "delivery_limit": settings.delivery_limit,
            "retry_seconds": settings.handler_retry_seconds,
        }
        subscribe(
            ctx.broker,
            ORCHESTRATOR_COMMANDS,
            orchestrator_command_adapter,
            orchestrator.handle_command,
            **common,
        )
        subscribe(
            ctx.broker,
            ORCHESTRATOR_PROVIDER_UPDATES,
            provider_update_adapter,
            orchestrator.handle_provider_update,
            **common,
        )

    async def started(ctx: runtime.WorkerContext) -> None:
        orchestrator = holder["orchestrator"]
        ctx.supervisor.start(
            "expiry-sweep",
            lambda: runtime.every(settings.expiry_sweep_seconds, orchestrator.expire_due),
        )

    await runtime.serve_worker(
        SERVICE,
        settings,
        schema="orchestrator",
        migrations=resources.files("payment_orchestrator") / "migrations",
        register=register,
        started=started,
        stopped=lambda _: clients.close(),
    )


def main() -> None:
    runtime.run(_main)


if __name__ == "__main__":
    main()
