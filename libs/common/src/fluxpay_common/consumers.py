"""A worker's queue consumers on aio-pika directly: one connection, one channel per queue.

FastStream's per-message path (context scopes, middlewares, the call's suitability checks,
its ack middleware) cost about half of a worker's CPU per payment (issue 15); the platform
needs none of it: `consumer.subscribe` parses, traces, retries and settles each message
itself. Here each queue gets its own channel with the configured prefetch; every delivery
runs in its own task (aiormq starts one per delivery), so a queue has up to `prefetch`
messages in hand at once, as it had under FastStream (per-payment order rests on sequence
numbers and the inbox, not on serial handling). Acks, nacks and replies go out on the
delivery's own channel.

- Reconnection: a lost connection or channel is reopened with capped backoff (0.5 s to
  10 s), every queue consumed again; deliveries of the lost channel return to their queue.
- Graceful stop: stop consuming, let the messages in hand finish (`graceful_timeout`),
  then close; whatever is still unacknowledged returns to its queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.abc import DeliveredMessage

from fluxpay_common.logging import get_logger

log = get_logger(__name__)


class Delivery:
    """One delivered message: what handlers read of it (the attributes of aio-pika's
    `IncomingMessage` of the same names) and its settlement on the channel it came on.
    Built straight from aiormq's frame: aio-pika's message checks a lock on each of its
    thirty attribute writes, a tenth of this path's CPU."""

    __slots__ = (
        "body",
        "channel",
        "correlation_id",
        "delivery_tag",
        "headers",
        "message_id",
        "redelivered",
        "reply_to",
    )

    def __init__(self, delivered: DeliveredMessage) -> None:
        properties = delivered.header.properties
        self.body: bytes = delivered.body
        self.headers: dict[str, Any] = properties.headers or {}
        self.message_id: str | None = properties.message_id
        self.correlation_id: str | None = properties.correlation_id
        self.reply_to: str | None = properties.reply_to
        self.redelivered = bool(delivered.redelivered)
        self.delivery_tag = delivered.delivery_tag or 0
        self.channel: aiormq.abc.AbstractChannel = delivered.channel

    async def ack(self) -> None:
        await self.channel.basic_ack(self.delivery_tag)

    async def nack(self, requeue: bool = True) -> None:
        await self.channel.basic_nack(self.delivery_tag, requeue=requeue)

    async def reject(self, requeue: bool = False) -> None:
        await self.channel.basic_reject(self.delivery_tag, requeue=requeue)


OnMessage = Callable[[Delivery], Awaitable[None]]


@dataclass
class _Consumer:
    queue: str
    on_message: OnMessage
    channel: aiormq.Channel | None = None
    tag: str | None = None


class Consumers:
    """The consumers of one process, started and stopped together."""

    def __init__(self, url: str, prefetch: int, graceful_timeout: float = 10.0) -> None:
        self._url = url
        self._prefetch = prefetch
        self._graceful_timeout = graceful_timeout
        self._consumers: list[_Consumer] = []
        self._connection: AbstractConnection | None = None
        self._lost = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        self._stopping = False
        self._in_hand = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, queue: str, on_message: OnMessage) -> None:
        """Consume `queue` from the next start on; `on_message` settles each message."""
        self._consumers.append(_Consumer(queue, on_message))

    async def start(self) -> None:
        """Connect and consume every queue (raises when the broker does not answer)."""
        self._stopping = False
        await self._open()
        self._keeper = asyncio.create_task(self._keep_connected(), name="consumers-keeper")

    async def stop(self) -> None:
        """Stop consuming, let the messages in hand finish, then close the connection."""
        self._stopping = True
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        for consumer in self._consumers:
            await self._cancel(consumer)
        try:
            await asyncio.wait_for(self._idle.wait(), self._graceful_timeout)
        except TimeoutError:
            log.warning("consumers_stopped_with_messages_in_hand", in_hand=self._in_hand)
        await self._close()

    async def attached(self) -> bool:
        """Every queue has its consumer on an open channel (readiness)."""
        if self._connection is None or self._connection.is_closed or not self._consumers:
            return False
        return all(
            c.channel is not None and not c.channel.is_closed and c.tag in c.channel.consumers
            for c in self._consumers
        )

    async def _open(self) -> None:
        await self._close()
        self._lost.clear()
        connection = await aio_pika.connect(self._url)
        self._connection = connection
        connection.close_callbacks.add(lambda *_: self._on_lost(connection))
        try:
            for consumer in self._consumers:
                channel = await connection.channel(publisher_confirms=False)
                channel.close_callbacks.add(lambda *_: self._on_lost(connection))
                await self._consume(channel, consumer)
        except BaseException:
            await self._close()
            raise

    async def _consume(self, channel: AbstractChannel, consumer: _Consumer) -> None:
        await channel.set_qos(prefetch_count=self._prefetch)
        raw = cast(aiormq.Channel, await channel.get_underlay_channel())
        # Below aio-pika's `Queue.consume`, which starts a second task per delivery.
        ok = await raw.basic_consume(consumer.queue, functools.partial(self._deliver, consumer))
        consumer.channel, consumer.tag = raw, ok.consumer_tag

    async def _deliver(self, consumer: _Consumer, delivered: DeliveredMessage) -> None:
        if self._stopping:
            return  # left unacknowledged: it returns to its queue when the channel closes
        self._in_hand += 1
        self._idle.clear()
        try:
            await consumer.on_message(Delivery(delivered))
        except Exception as exc:
            log.error("message_consumer_crashed", queue=consumer.queue, error=repr(exc))
        finally:
            self._in_hand -= 1
            if not self._in_hand:
                self._idle.set()

    def _on_lost(self, connection: AbstractConnection) -> None:
        if connection is self._connection and not self._stopping and not self._lost.is_set():
            log.warning("consumers_connection_lost")
            self._lost.set()

    async def _keep_connected(self) -> None:
        while True:
            await self._lost.wait()
            backoff = 0.5
            while True:
                try:
                    await self._open()
                    log.info("consumers_reconnected", queues=[c.queue for c in self._consumers])
                    break
                except Exception as exc:
                    log.warning("consumers_reconnect_failed", error=repr(exc), retry_in=backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)

    async def _cancel(self, consumer: _Consumer) -> None:
        channel, tag = consumer.channel, consumer.tag
        if channel is None or tag is None or channel.is_closed:
            return
        try:
            await asyncio.wait_for(channel.basic_cancel(tag), 5)
        except Exception as exc:
            log.warning("consumer_cancel_failed", queue=consumer.queue, error=repr(exc))

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        for consumer in self._consumers:
            consumer.channel = consumer.tag = None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)
