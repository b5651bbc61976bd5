"""Transactional outbox: write a message with the state it announces, publish it after.

`add_to_outbox` runs inside the caller's transaction. Two ways to the broker, both with
publisher confirms:

- Right after commit (the hot path): a unit of work opened with `relay.transaction(conn)`
  collects the rows it adds (marked `direct`, no NOTIFY); once the transaction commits they
  go in-process to the relay, which publishes them and marks them published in one batched
  `UPDATE ... WHERE id = ANY($1)` per flush. A rollback hands over nothing.
- The sweep: the relay's poll loop (woken by the NOTIFY of a row added without a
  collector: admin CLI, the gateway's rare writers) publishes pending rows in id order and
  stamps them in the transaction that locked them (FOR UPDATE SKIP LOCKED, so relays scale
  out). It takes a `direct` row only once it is older than a grace period: its process died
  before publishing, or the in-process queue was full. After a failed in-process publish
  (broker down) nothing is handed over until the sweep, without grace, has caught up in id
  order: a payment's later messages do not overtake the ones the outage held back.

At-least-once either way: a crash between publishing and the stamp republishes the row,
and consumers dedup by message_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
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

_COLUMNS = "message_id, exchange, routing_key, body, headers, correlation_id"
# One round trip: the row, and the relay's wake-up (delivered at commit).
_INSERT_AND_NOTIFY = (
    f"WITH added AS (INSERT INTO outbox_message ({_COLUMNS})"
    " VALUES ($1, $2, $3, $4, $5, $6) RETURNING 1)"
    f" SELECT pg_notify('{NOTIFY_CHANNEL}_' || current_schema(), '') FROM added"
)
# Handed over after commit: no wake-up. clock_timestamp(), not the transaction's start, so a
# long transaction does not make the row look overdue to the sweep the moment it commits.
_INSERT_DIRECT = (
    f"INSERT INTO outbox_message ({_COLUMNS}, direct, created_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, true, clock_timestamp()) RETURNING id"
)
_DUE = "published_at IS NULL AND (NOT direct OR created_at < now() - make_interval(secs => $1))"
_ANY_DUE = f"SELECT EXISTS (SELECT 1 FROM outbox_message WHERE {_DUE})"
_SWEEP = (
    f"SELECT id, {_COLUMNS} FROM outbox_message WHERE {_DUE}"
    " ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED"
)
_MARK = "UPDATE outbox_message SET published_at = now() WHERE id = ANY($1::bigint[])"
# The sweep may have published a handed-over row meanwhile: its stamp stays.
_MARK_HANDED_OVER = _MARK + " AND published_at IS NULL"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    message_id: uuid.UUID
    exchange: str
    routing_key: str
    body: bytes
    headers: dict[str, Any]
    correlation_id: str | None

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> OutboxRow:
        return cls(
            row["id"],
            row["message_id"],
            row["exchange"],
            row["routing_key"],
            bytes(row["body"]),
            row["headers"] or {},
            row["correlation_id"],
        )


@dataclass(slots=True)
class _Collector:
    """The rows one transaction on `conn` added, handed over if it commits."""

    conn: asyncpg.Connection
    rows: list[OutboxRow] = field(default_factory=list)


_COLLECTOR: ContextVar[_Collector | None] = ContextVar("fluxpay_outbox_collector", default=None)


def _values(
    exchange: RabbitExchange | str, routing_key: str, message: Message
) -> tuple[uuid.UUID, str, str, bytes, dict[str, Any], str | None]:
    name = exchange.name if isinstance(exchange, RabbitExchange) else exchange
    headers = {
        **inject_headers(),
        "x-message-type": getattr(message, "type", type(message).__name__),
    }
    return (
        message.message_id,
        name,
        routing_key,
        message.to_bytes(),
        headers,
        message.correlation_id or None,
    )


async def add_to_outbox(
    conn: asyncpg.Connection, exchange: RabbitExchange | str, routing_key: str, message: Message
) -> None:
    values = _values(exchange, routing_key, message)
    collector = _COLLECTOR.get()
    # Only the collector's own connection: a write on another one is another transaction.
    if collector is None or collector.conn is not conn:
        await conn.execute(_INSERT_AND_NOTIFY, *values)
        return
    row_id = await conn.fetchval(_INSERT_DIRECT, *values)
    collector.rows.append(OutboxRow(row_id, *values))


@dataclass(frozen=True, slots=True)
class StatementRows:
    """Outbox rows that a caller's own statement inserts (a CTE beside its state change),
    so state and messages take one round trip. Handed over like `add_to_outbox`'s: inside
    `relay.transaction(conn)` to its collector (published after COMMIT); outside any
    transaction, with a relay, straight after the statement (it committed by itself);
    otherwise they are left to the sweep, woken by a NOTIFY.

    Build with `statement_rows(conn, relay, messages)`; put `cte(first_param, when)` in the
    statement's WITH list, pass `args()` after the statement's own, select
    `RETURNED` in the result, and call `written(conn, row)` once the statement returned.
    """

    values: list[tuple[uuid.UUID, str, str, bytes, dict[str, Any], str | None]]
    direct: bool
    relay: OutboxRelay | None
    collector: _Collector | None

    def cte(self, first_param: int, when: str = "true") -> str:
        """`outboxed AS (INSERT ...)`: the rows, in the given order, inserted only `when`
        (an SQL condition, e.g. that the state change wrote its row)."""
        p = [f"${first_param + i}" for i in range(7)]
        return (
            f"outboxed AS (INSERT INTO outbox_message ({_COLUMNS}, direct, created_at)"
            " SELECT m.message_id, m.exchange, m.routing_key, m.body, m.headers::jsonb,"
            f" m.correlation_id, {p[6]}::boolean, clock_timestamp()"
            f" FROM unnest({p[0]}::uuid[], {p[1]}::text[], {p[2]}::text[], {p[3]}::bytea[],"
            f" {p[4]}::text[], {p[5]}::text[]) WITH ORDINALITY"
            " AS m(message_id, exchange, routing_key, body, headers, correlation_id, ord)"
            f" WHERE {when} ORDER BY m.ord RETURNING id, message_id)"
        )

    def args(self) -> list[Any]:
        columns = list(zip(*self.values, strict=True)) if self.values else [()] * 6
        ids, exchanges, keys, bodies, headers, correlations = columns
        return [
            list(ids),
            list(exchanges),
            list(keys),
            list(bodies),
            [orjson.dumps(h).decode() for h in headers],
            list(correlations),
            self.direct,
        ]

    async def written(self, conn: asyncpg.Connection, row: asyncpg.Record | None) -> None:
        """The statement returned `row` (with the `RETURNED` columns): hand its rows over."""
        if row is None or not row["outbox_ids"]:
            return
        ids = dict(zip(row["outbox_message_ids"], row["outbox_ids"], strict=True))
        rows = [OutboxRow(ids[v[0]], *v) for v in self.values if v[0] in ids]
        if self.collector is not None:
            self.collector.rows.extend(rows)
        elif self.direct and self.relay is not None:
            self.relay.hand_over(rows)
        else:
            await conn.execute(_NOTIFY)


# The columns a statement with `StatementRows.cte` selects for `written`.
RETURNED = (
    "(SELECT array_agg(id) FROM outboxed) AS outbox_ids,"
    " (SELECT array_agg(message_id) FROM outboxed) AS outbox_message_ids"
)
_NOTIFY = f"SELECT pg_notify('{NOTIFY_CHANNEL}_' || current_schema(), '')"


def statement_rows(
    conn: asyncpg.Connection,
    relay: OutboxRelay | None,
    messages: Sequence[tuple[RabbitExchange | str, str, Message]],
) -> StatementRows:
    """The outbox rows of `messages` for a statement on `conn` (see `StatementRows`)."""
    values = [_values(exchange, key, message) for exchange, key, message in messages]
    collector = _COLLECTOR.get()
    if collector is not None and collector.conn is conn:
        return StatementRows(values, True, None, collector)
    direct = relay is not None and not conn.is_in_transaction()
    return StatementRows(values, direct, relay, None)


def outbox_transaction(
    conn: asyncpg.Connection, relay: OutboxRelay | None
) -> contextlib.AbstractAsyncContextManager[Any]:
    """A unit of work's transaction: `relay.transaction(conn)` (its messages published right
    after commit), or a plain one without a relay (the relay's sweep publishes them)."""
    return relay.transaction(conn) if relay is not None else conn.transaction()


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: RabbitBroker,
        *,
        batch_size: int = 200,
        idle_poll_seconds: float = 1.0,
        direct_grace_seconds: float = 5.0,
        max_handed_over: int = 10_000,
        mark_linger_seconds: float = 0.05,
        publish_timeout_seconds: float = 10.0,
    ) -> None:
        self._pool = pool
        self._broker = broker
        self._batch_size = batch_size
        self._idle_poll = idle_poll_seconds
        self._grace = direct_grace_seconds
        self._max_handed_over = max_handed_over
        self._linger = mark_linger_seconds
        self._publish_timeout = publish_timeout_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        # A handed-over row failed to publish: until the sweep has caught up, it publishes
        # every pending row in id order (no grace) and nothing is handed over, so a payment's
        # later messages do not overtake the ones the outage held back.
        self._suspended = False
        self._sampled_at = 0.0
        # Committed rows waiting to be published in-process (bounded), and the ids published
        # since the last flush (marked in one statement).
        self._handed_over: deque[OutboxRow] = deque()
        self._handed = asyncio.Event()
        self._published: list[int] = []
        self._marks_due = asyncio.Event()
        self._stopped: asyncio.Event | None = None

    # ------------------------------------------------------------ publish right after commit

    @contextlib.asynccontextmanager
    async def transaction(self, conn: asyncpg.Connection) -> AsyncIterator[None]:
        """`conn.transaction()` whose outbox rows are published as soon as it commits.

        Wrap exactly one transaction (no savepoint rolled back inside it while going on):
        what it adds is handed over only when the block exits without an exception.
        """
        collector = _Collector(conn)
        token = _COLLECTOR.set(collector)
        try:
            async with conn.transaction():
                yield
        finally:
            _COLLECTOR.reset(token)
        self.hand_over(collector.rows)

    def hand_over(self, rows: Sequence[OutboxRow]) -> None:
        """Committed rows to publish now. Never raises into the caller, who has committed:
        once stopping, while suspended, or beyond the bound, the rows are simply left to
        the sweep."""
        if not rows or self._stopping or self._suspended:
            return
        if len(self._handed_over) + len(rows) > self._max_handed_over:
            log.warning("outbox_rows_left_to_sweep", rows=len(rows))
            return
        self._handed_over.extend(rows)
        self._handed.set()

    def _suspend(self, reason: str, rows: int) -> None:
        log.warning("outbox_direct_publish_suspended", reason=reason, rows=rows)
        self._suspended = True
        self._handed_over.clear()  # committed rows: the sweep takes them, in id order
        self._wake.set()

    async def _publish_handed_over(self) -> None:
        """Publish what commits hand over, a batch at a time; once stopping, finish the
        queue and return. A failed publish leaves its row to the sweep (no retry here)."""
        while self._handed_over or not self._stopping:
            if not self._handed_over:
                self._handed.clear()
                await self._handed.wait()
                continue
            take = min(len(self._handed_over), self._batch_size)
            batch = [self._handed_over.popleft() for _ in range(take)]
            try:
                async with asyncio.timeout(self._publish_timeout):
                    results = await asyncio.gather(
                        *(self._publish(row) for row in batch), return_exceptions=True
                    )
            except TimeoutError:
                self._suspend("publish timed out", len(batch))
                continue
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                self._suspend(repr(failed[0]), len(failed))
            self._published.extend(
                row.id
                for row, result in zip(batch, results, strict=True)
                if not isinstance(result, BaseException)
            )
            self._marks_due.set()

    async def _mark_loop(self) -> None:
        backoff = 0.2
        while True:
            await self._marks_due.wait()
            # A short linger gathers the ids of several commits into one statement.
            await asyncio.sleep(self._linger)
            self._marks_due.clear()
            if await self.flush():
                backoff = 0.2
                continue
            self._marks_due.set()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def flush(self) -> bool:
        """Mark everything published since the last flush, in one statement (no BEGIN/
        COMMIT: a single statement is atomic). False when the database refused: the ids are
        kept for the next flush, up to the bound (beyond it the sweep republishes them, a
        rare duplicate consumers drop by message_id)."""
        ids, self._published = self._published, []
        if not ids:
            return True
        try:
            await self._pool.execute(_MARK_HANDED_OVER, ids)
        except Exception as exc:
            log.warning("outbox_mark_failed", rows=len(ids), error=repr(exc))
            self._published = (ids + self._published)[-self._max_handed_over :]
            return False
        return True

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Publish until stopped: handed-over rows at once, the rest by the sweep; outlives
        broker and database outages by retrying."""
        self._stopped = asyncio.Event()
        direct = asyncio.create_task(self._publish_handed_over(), name="outbox-handed-over")
        marker = asyncio.create_task(self._mark_loop(), name="outbox-marker")
        try:
            await self._sweep()
            await direct
        finally:
            for task in (direct, marker):
                task.cancel()
            await asyncio.gather(direct, marker, return_exceptions=True)
            await self.flush()
            self._stopped.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._handed.set()

    async def close(self, timeout: float = 5.0) -> None:
        """Graceful stop: publish what was handed over (for up to `timeout`) and mark all
        that was published. Rows still unpublished stay in the table for a later sweep."""
        self.stop()
        if self._stopped is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout)
        await self.flush()

    # ------------------------------------------------------------ the sweep

    async def _sweep(self) -> None:
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
                self._resume()
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

    def _resume(self) -> None:
        """The sweep has caught up: commits hand their rows over again."""
        if self._suspended:
            self._suspended = False
            log.info("outbox_direct_publish_resumed")

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows (handed-over ones only once overdue, unless
        suspended); returns how many were published."""
        grace = 0.0 if self._suspended else self._grace
        # Most polls find nothing due: one statement then, not BEGIN, SELECT, COMMIT.
        if not await self._pool.fetchval(_ANY_DUE, grace):
            return 0
        async with self._pool.acquire() as conn, conn.transaction():
            records = await conn.fetch(_SWEEP, grace, self._batch_size)
            if not records:
                return 0
            rows = [OutboxRow.from_record(r) for r in records]
            await asyncio.gather(*(self._publish(row) for row in rows))
            await conn.execute(_MARK, [row.id for row in rows])
        return len(rows)

    async def _publish(self, row: OutboxRow) -> None:
        await self._broker.publish(
            row.body,
            exchange=row.exchange,
            routing_key=row.routing_key,
            message_id=str(row.message_id),
            correlation_id=row.correlation_id,
            headers=row.headers,
            content_type="application/json",
            message_type=row.headers.get("x-message-type"),
            persist=True,
            mandatory=True,
        )

    async def _wait_for_work(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._idle_poll)
