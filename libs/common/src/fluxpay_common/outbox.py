"""Transactional outbox: write a message with the state it announces, publish it later.

`add_to_outbox` runs inside the caller's transaction. `OutboxRelay` publishes pending
rows in id order with publisher confirms and stamps them published in the same database
transaction that locked them (FOR UPDATE SKIP LOCKED, so relays scale out). A crash after
publishing and before the stamp republishes the batch: consumers dedup by message_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncpg
from faststream.rabbit import RabbitBroker, RabbitExchange

from fluxpay_common.logging import get_logger
from fluxpay_common.messages import Message
from fluxpay_common.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE
from fluxpay_common.tracing import inject_headers

log = get_logger(__name__)
# One channel per schema (`fluxpay_outbox_<schema>`): a service's relay wakes for its own
# rows only, not for every row any service of the database writes.
NOTIFY_CHANNEL = "fluxpay_outbox"
# How often the relay samples its backlog for /metrics (one indexed query).
BACKLOG_SAMPLE_SECONDS = 5.0


async def add_to_outbox(
    conn: asyncpg.Connection, exchange: RabbitExchange | str, routing_key: str, message: Message
) -> None:
    name = exchange.name if isinstance(exchange, RabbitExchange) else exchange
    # One round trip: the row, and the relay's wake-up (delivered at commit).
    await conn.execute(
        "WITH added AS (INSERT INTO outbox_message (message_id, exchange, routing_key, body,"
        " headers, correlation_id) VALUES ($1, $2, $3, $4, $5, $6) RETURNING 1)"
        f" SELECT pg_notify('{NOTIFY_CHANNEL}_' || current_schema(), '') FROM added",
        message.message_id,
        name,
        routing_key,
        message.to_bytes(),
        {**inject_headers(), "x-message-type": getattr(message, "type", type(message).__name__)},
        message.correlation_id or None,
    )


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: RabbitBroker,
        *,
        batch_size: int = 200,
        idle_poll_seconds: float = 1.0,
    ) -> None:
        self._pool = pool
        self._broker = broker
        self._batch_size = batch_size
        self._idle_poll = idle_poll_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._sampled_at = 0.0

    async def run(self) -> None:
        """Publish until stopped; outlives broker and database outages by retrying."""
        backoff = 0.2
        while not self._stopping:
            try:
                async with self._pool.acquire() as listener:
                    schema = await listener.fetchval("SELECT current_schema()")
                    channel = f"{NOTIFY_CHANNEL}_{schema}"
                    await listener.add_listener(channel, self._on_notify)
                    try:
                        await self._drain(listener)
                    finally:
                        with contextlib.suppress(Exception):
                            await listener.remove_listener(channel, self._on_notify)
                backoff = 0.2
            except Exception as exc:
                log.warning("outbox_relay_error", error=repr(exc), retry_in=backoff)
                # With the broker down the backlog grows: the gauges must say so.
                await self._sample_backlog()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _drain(self, listener: asyncpg.Connection) -> None:
        while not self._stopping and not listener.is_closed():
            # Cleared before reading, so a NOTIFY that lands while publishing is not lost.
            self._wake.clear()
            await self._sample_backlog()
            if await self.publish_pending() < self._batch_size:
                await self._wait_for_work()

    async def _sample_backlog(self) -> None:
        """Rows waiting and the age of the oldest: a stuck relay or broker shows here first.
        Best effort: with the database down there is nothing to sample."""
        if time.monotonic() - self._sampled_at < BACKLOG_SAMPLE_SECONDS:
            return
        self._sampled_at = time.monotonic()
        try:
            async with self._pool.acquire() as conn:
                row = await conn.fetchrow(
                    "SELECT current_schema() AS service, count(*) AS waiting,"
                    " coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest"
                    " FROM outbox_message WHERE published_at IS NULL"
                )
        except Exception as exc:
            log.debug("outbox_backlog_not_sampled", error=repr(exc))
            return
        OUTBOX_BACKLOG.labels(row["service"]).set(row["waiting"])
        OUTBOX_OLDEST_AGE.labels(row["service"]).set(row["oldest"])

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows; returns how many were published."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, message_id, exchange, routing_key, body, headers, correlation_id"
                " FROM outbox_message WHERE published_at IS NULL"
                " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
            )
            if not rows:
                return 0
            await asyncio.gather(*(self._publish(row) for row in rows))
            await conn.execute(
                "UPDATE outbox_message SET published_at = now() WHERE id = ANY($1::bigint[])",
                [row["id"] for row in rows],
            )
        return len(rows)

    async def _publish(self, row: asyncpg.Record) -> None:
        headers: dict[str, Any] = row["headers"] or {}
        await self._broker.publish(
            bytes(row["body"]),
            exchange=row["exchange"],
            routing_key=row["routing_key"],
            message_id=str(row["message_id"]),
            correlation_id=row["correlation_id"],
            headers=headers,
            content_type="application/json",
            message_type=headers.get("x-message-type"),
            persist=True,
            mandatory=True,
        )

    async def _wait_for_work(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._idle_poll)
