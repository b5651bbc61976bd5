"""Request/reply over RabbitMQ with many requests in flight per process.

One long-lived consumer on RabbitMQ's direct reply-to pseudo-queue and a map from
correlation id to future, as aio-pika's RPC pattern does. (FastStream 0.7's
`broker.request()` holds one lock per process for the whole round trip.)
"""

from __future__ import annotations

import asyncio
import time
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
# Unix time after which the caller no longer waits; consumers skip a request past it. (A
# per-message TTL would dead-letter every request that outlived a broker or service outage.)
DEADLINE_HEADER = "x-reply-deadline"


class RpcTimeout(Exception):
    """No answer within the deadline: the command may or may not have taken effect."""


class RpcUnavailable(Exception):
    """The broker could not take the request."""


class RpcClient:
    """Many requests in flight over one connection; survives a broker restart.

    The reply consumer lives on the channel that publishes (RabbitMQ's direct reply-to
    requires it), so the client owns its reconnection rather than leaving it to a robust
    channel, which could restore the channel before the reply consumer and have every later
    publish refused. A lost connection fails the requests in flight (RpcUnavailable: the
    caller answers 503 and the merchant retries) and the next call reconnects.
    """

    def __init__(self, url: str, exchange: str, routing_key: str) -> None:
        self._url = url
        self._exchange_name = exchange
        self._routing_key = routing_key
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._lock = asyncio.Lock()
        self._stopped = False

    async def start(self) -> None:
        await self._ensure_open()

    async def stop(self) -> None:
        self._stopped = True
        self._fail_pending(RpcUnavailable("rpc client stopped"))
        if self._connection is not None:
            await self._connection.close()

    def _usable(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def _ensure_open(self) -> None:
        if self._usable():
            return
        async with self._lock:
            if self._usable():
                return
            if self._connection is not None and not self._connection.is_closed:
                await self._connection.close()
            try:
                connection = await aio_pika.connect(self._url)
                channel = await connection.channel(publisher_confirms=True)
                self._exchange = await channel.get_exchange(self._exchange_name, ensure=False)
                queue = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)
                await queue.consume(self._on_reply, no_ack=True)
            except (aio_pika.exceptions.AMQPError, OSError) as exc:
                raise RpcUnavailable(repr(exc)) from exc
            connection.close_callbacks.add(self._on_close)
            channel.close_callbacks.add(self._on_close)
            self._connection, self._channel = connection, channel
            log.info("rpc_client_connected", routing_key=self._routing_key)

    def _on_close(self, *_: Any) -> None:
        if not self._stopped:
            log.warning("rpc_client_connection_lost", routing_key=self._routing_key)
        self._fail_pending(RpcUnavailable("connection to the broker lost"))

    def _fail_pending(self, error: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message.body)

    async def call(
        self, request: Message, reply_type: type[BaseModel] | TypeAdapter[Any], timeout: float
    ) -> Any:
        if self._stopped:
            raise RpcUnavailable("rpc client stopped")
        await self._ensure_open()
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
            headers={
                **inject_headers(),
                "x-message-type": getattr(request, "type", ""),
                DEADLINE_HEADER: f"{time.time() + timeout:.3f}",
            },
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            await self._exchange.publish(message, routing_key=self._routing_key, timeout=timeout)
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise RpcUnavailable(repr(exc)) from exc
