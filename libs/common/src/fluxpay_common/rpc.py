"""Request/reply over RabbitMQ with many requests in flight per process.

One long-lived consumer on RabbitMQ's direct reply-to pseudo-queue and a map from
correlation id to future, as aio-pika's RPC pattern does. (FastStream 0.7's
`broker.request()` holds one lock per process for the whole round trip.)
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from pydantic import BaseModel, TypeAdapter

from fluxpay_common.logging import get_logger
from fluxpay_common.messages import Message
from fluxpay_common.tracing import inject_headers

log = get_logger(__name__)
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


class RpcTimeout(Exception):
    """No answer within the deadline: the command may or may not have taken effect."""


class RpcUnavailable(Exception):
    """The broker could not take the request."""


class RpcClient:
    def __init__(self, url: str, exchange: str, routing_key: str) -> None:
        self._url = url
        self._exchange_name = exchange
        self._routing_key = routing_key
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url)
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._channel.get_exchange(self._exchange_name, ensure=False)
        queue = await self._channel.get_queue(DIRECT_REPLY_TO, ensure=False)
        await queue.consume(self._on_reply, no_ack=True)

    async def stop(self) -> None:
        for future in self._pending.values():
            future.cancel()
        if self._connection is not None:
            await self._connection.close()

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message.body)

    async def call(
        self, request: Message, reply_type: type[BaseModel] | TypeAdapter[Any], timeout: float
    ) -> Any:
        if self._exchange is None:
            raise RpcUnavailable("rpc client not started")
        correlation_id = str(uuid.uuid4())
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            await self._publish(request, correlation_id, timeout)
            body = await asyncio.wait_for(future, timeout)
        except TimeoutError as exc:
            raise RpcTimeout(f"no reply within {timeout}s") from exc
        finally:
            self._pending.pop(correlation_id, None)
        if isinstance(reply_type, TypeAdapter):
            return reply_type.validate_json(body)
        return reply_type.model_validate_json(body)

    async def _publish(self, request: Message, correlation_id: str, timeout: float) -> None:
        assert self._exchange is not None
        message = aio_pika.Message(
            request.to_bytes(),
            content_type="application/json",
            correlation_id=correlation_id,
            message_id=str(request.message_id),
            reply_to=DIRECT_REPLY_TO,
            # A request nobody read before the caller gave up is not worth processing.
            expiration=timeout,
            headers={**inject_headers(), "x-message-type": getattr(request, "type", "")},
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            await self._exchange.publish(message, routing_key=self._routing_key, timeout=timeout)
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise RpcUnavailable(repr(exc)) from exc
