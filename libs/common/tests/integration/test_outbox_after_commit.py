"""Publish right after commit: a unit of work's outbox rows go in-process to the relay once
its transaction commits; the sweep covers what that path could not publish. Real RabbitMQ
and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import asyncpg
import pytest
from faststream.rabbit import RabbitBroker
from fluxpay_testing.infra import Infra, wait_for

from fluxpay_common import topology
from fluxpay_common.db import create_pool, migrate
from fluxpay_common.messages import ProviderPaymentUpdate
from fluxpay_common.outbox import RETURNED, OutboxRelay, add_to_outbox, statement_rows
from fluxpay_common.runtime import make_broker
from fluxpay_common.settings import ServiceSettings

# A test's minute: neither the sweep's poll nor its grace may be what publishes a row in
# the tests of the in-process path.
NEVER = 60.0


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    # A schema per test: a row another test left unpublished cannot jam this test's sweep.
    schema = f"outbox_{uuid.uuid4().hex[:8]}"
    pool = await create_pool(infra.database_url, schema)
    await migrate(pool, schema, None)
    yield pool
    await pool.close()


@pytest.fixture
async def broker(infra: Infra) -> AsyncIterator[RabbitBroker]:
    settings = ServiceSettings(RABBITMQ_URL=infra.rabbitmq_url, DATABASE_URL=infra.database_url)
    broker = make_broker(settings)
    await broker.connect()
    yield broker
    await broker.stop()


class Probe:
    """An exclusive queue bound to one routing key of the provider exchange."""

    def __init__(self, queue: aio_pika.abc.AbstractQueue, key: str) -> None:
        self.queue, self.key = queue, key
        self.seen: list[uuid.UUID] = []

    async def drain(self) -> list[uuid.UUID]:
        while (message := await self.queue.get(fail=False, no_ack=True)) is not None:
            self.seen.append(uuid.UUID(message.message_id))
        return self.seen


@pytest.fixture
async def probe(infra: Infra) -> AsyncIterator[Probe]:
    key = f"provider.probe{uuid.uuid4().hex[:6]}.completed"
    connection = await aio_pika.connect(infra.rabbitmq_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        topology.PROVIDER.name, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key=key)
    yield Probe(queue, key)
    await connection.close()


@contextlib.asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[OutboxRelay]:
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        await relay.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class BrokerDown:
    """The broker as a relay sees it during an outage: every publish fails until `up()`."""

    def __init__(self, broker: RabbitBroker) -> None:
        self._broker, self.down, self.attempts = broker, True, 0

    def up(self) -> None:
        self.down = False

    async def publish(self, *args: Any, **kwargs: Any) -> Any:
        self.attempts += 1
        if self.down:
            raise ConnectionError("broker unreachable")
        return await self._broker.publish(*args, **kwargs)


def _update() -> ProviderPaymentUpdate:
    return ProviderPaymentUpdate(payment_id=uuid.uuid4(), provider="sandbox", status="completed")


async def _commit(pool: asyncpg.Pool, relay: OutboxRelay, key: str, n: int = 1) -> list[uuid.UUID]:
    messages = [_update() for _ in range(n)]
    async with pool.acquire() as conn, relay.transaction(conn):
        for message in messages:
            await add_to_outbox(conn, topology.PROVIDER, key, message)
    return [m.message_id for m in messages]


async def _pending(pool: asyncpg.Pool, ids: list[uuid.UUID]) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM outbox_message WHERE published_at IS NULL"
        " AND message_id = ANY($1::uuid[])",
        ids,
    )


async def test_committed_rows_are_published_once_right_after_commit(pool, broker, probe) -> None:
    relay = OutboxRelay(pool, broker, idle_poll_seconds=NEVER, direct_grace_seconds=NEVER)
    async with running(relay):
        ids = await _commit(pool, relay, probe.key, n=2)
        await wait_for(lambda: _all_marked(pool, ids), what="both rows marked published")
    direct = await pool.fetchval(
        "SELECT bool_and(direct) FROM outbox_message WHERE message_id = ANY($1::uuid[])", ids
    )
    assert direct is True
    # Published before being marked, so every delivery is in the queue by now.
    assert sorted(await probe.drain()) == sorted(ids)


async def _all_marked(pool: asyncpg.Pool, ids: list[uuid.UUID]) -> bool:
    return await _pending(pool, ids) == 0


async def test_a_rolled_back_unit_of_work_hands_nothing_over(pool, broker, probe) -> None:
    relay = OutboxRelay(pool, broker, idle_poll_seconds=NEVER, direct_grace_seconds=NEVER)
    async with running(relay):
        rolled_back = _update()
        with contextlib.suppress(RuntimeError):
            async with pool.acquire() as conn, relay.transaction(conn):
                await add_to_outbox(conn, topology.PROVIDER, probe.key, rolled_back)
                raise RuntimeError("abort the unit of work")
        # Handed over after the rolled-back one would have been: published after it too.
        committed = await _commit(pool, relay, probe.key)
        await wait_for(probe.drain, what="the committed message")
    assert probe.seen == committed
    stored = await pool.fetchval(
        "SELECT count(*) FROM outbox_message WHERE message_id = $1", rolled_back.message_id
    )
    assert stored == 0


async def test_rows_the_broker_refused_are_published_later_by_the_sweep(
    pool, broker, probe
) -> None:
    outage = BrokerDown(broker)
    relay = OutboxRelay(pool, outage, idle_poll_seconds=NEVER, direct_grace_seconds=NEVER)  # type: ignore[arg-type]
    async with running(relay):
        # The handler's commit goes through although nothing can be published.
        ids = await _commit(pool, relay, probe.key)
        await wait_for(lambda: _attempted(outage), what="a publish attempt during the outage")
        assert await _pending(pool, ids) == 1
        outage.up()
        # No grace once a publish failed: the sweep takes the row as soon as it can.
        await wait_for(lambda: _all_marked(pool, ids), what="the sweep to publish the row")
        # Caught up: the next commit is handed over again (neither poll nor grace would
        # publish it within the test).
        later = await _commit(pool, relay, probe.key)
        await wait_for(lambda: _all_marked(pool, later), what="the in-process path resumed")
    assert await probe.drain() == ids + later


async def _attempted(outage: BrokerDown) -> bool:
    return outage.attempts > 0


async def test_a_row_added_without_a_collector_wakes_the_relay(pool, broker, probe) -> None:
    relay = OutboxRelay(pool, broker, idle_poll_seconds=NEVER)
    async with running(relay):
        for _ in range(2):  # the second one certainly finds the relay asleep, listening
            message = _update()
            async with pool.acquire() as conn, conn.transaction():
                await add_to_outbox(conn, topology.PROVIDER, probe.key, message)
            await wait_for(
                lambda m=message: _all_marked(pool, [m.message_id]),  # type: ignore[misc]
                timeout=10,
                what="the NOTIFY to wake the relay",
            )
    direct = await pool.fetchval(
        "SELECT bool_or(direct) FROM outbox_message WHERE message_id = $1", message.message_id
    )
    assert direct is False
    assert len(await probe.drain()) == 2


async def test_publications_are_marked_in_one_statement_per_flush(pool, broker, probe) -> None:
    relay = OutboxRelay(
        pool,
        broker,
        idle_poll_seconds=NEVER,
        direct_grace_seconds=NEVER,
        mark_linger_seconds=1.0,
    )
    async with running(relay):
        ids = [i for _ in range(5) for i in await _commit(pool, relay, probe.key)]
        await wait_for(lambda: _all_marked(pool, ids), what="the five rows marked")
    # now() is the statement's transaction time: one distinct stamp, one UPDATE.
    stamps = await pool.fetchval(
        "SELECT count(DISTINCT published_at) FROM outbox_message"
        " WHERE message_id = ANY($1::uuid[])",
        ids,
    )
    assert stamps == 1


async def test_graceful_stop_marks_what_was_published(pool, broker, probe) -> None:
    relay = OutboxRelay(
        pool,
        broker,
        idle_poll_seconds=NEVER,
        direct_grace_seconds=NEVER,
        mark_linger_seconds=NEVER,
    )
    task = asyncio.create_task(relay.run())
    ids = await _commit(pool, relay, probe.key)
    await wait_for(probe.drain, what="the message published")
    assert await _pending(pool, ids) == 1  # published, its mark still lingering
    await relay.close()
    assert await _pending(pool, ids) == 0
    await asyncio.wait_for(task, 5)


async def test_beyond_its_bound_the_queue_leaves_rows_to_the_sweep(pool, broker, probe) -> None:
    relay = OutboxRelay(
        pool, broker, idle_poll_seconds=NEVER, direct_grace_seconds=NEVER, max_handed_over=1
    )
    # Committed before the relay runs: the queue takes the first row, not the next two.
    queued = await _commit(pool, relay, probe.key)
    left = await _commit(pool, relay, probe.key, n=2)
    async with running(relay):
        await wait_for(lambda: _all_marked(pool, queued), what="the queued row published")
    assert await _pending(pool, left) == 2
    sweeper = OutboxRelay(pool, broker, direct_grace_seconds=0)
    assert await sweeper.publish_pending() == 2
    assert sorted(await probe.drain()) == sorted(queued + left)


# ---------------------------------------------------------------- rows of a caller's statement


async def _statement(
    conn: asyncpg.Connection, relay: OutboxRelay | None, key: str, when: str = "true"
) -> list[uuid.UUID]:
    """One statement writing two messages, as a hot unit of work writes them with its state."""
    messages = [_update(), _update()]
    rows = statement_rows(conn, relay, [(topology.PROVIDER, key, m) for m in messages])
    row = await conn.fetchrow(f"WITH {rows.cte(1, when)} SELECT {RETURNED}", *rows.args())
    await rows.written(conn, row)
    return [m.message_id for m in messages]


async def test_a_statements_rows_are_handed_over_once_it_committed_by_itself(
    pool, broker, probe
) -> None:
    relay = OutboxRelay(pool, broker, idle_poll_seconds=NEVER, direct_grace_seconds=NEVER)
    async with running(relay):
        async with pool.acquire() as conn:
            ids = await _statement(conn, relay, probe.key)
            skipped = await _statement(conn, relay, probe.key, when="false")
        await wait_for(lambda: _all_marked(pool, ids), what="the statement's rows published")
    assert await probe.drain() == ids
    stored = await pool.fetch(
        "SELECT message_id, direct FROM outbox_message WHERE message_id = ANY($1::uuid[])"
        " ORDER BY id",
        ids + skipped,
    )
    assert [(r["message_id"], r["direct"]) for r in stored] == [(i, True) for i in ids]


async def test_a_statements_rows_in_a_relay_transaction_wait_for_its_commit(
    pool, broker, probe
) -> None:
    relay = OutboxRelay(pool, broker, idle_poll_seconds=NEVER, direct_grace_seconds=NEVER)
    async with running(relay):
        with contextlib.suppress(RuntimeError):
            async with pool.acquire() as conn, relay.transaction(conn):
                rolled_back = await _statement(conn, relay, probe.key)
                raise RuntimeError("abort the unit of work")
        async with pool.acquire() as conn, relay.transaction(conn):
            committed = await _statement(conn, relay, probe.key)
        await wait_for(lambda: _all_marked(pool, committed), what="the committed rows")
    # Handed over before the rollback, the first two would have been published too.
    assert await probe.drain() == committed
    stored = await pool.fetchval(
        "SELECT count(*) FROM outbox_message WHERE message_id = ANY($1::uuid[])", rolled_back
    )
    assert stored == 0


async def test_a_statements_rows_without_a_relay_wake_the_sweep(pool, broker, probe) -> None:
    relay = OutboxRelay(pool, broker, idle_poll_seconds=NEVER)
    async with running(relay):
        for _ in range(2):  # the second one certainly finds the relay asleep, listening
            async with pool.acquire() as conn:
                ids = await _statement(conn, None, probe.key)
            await wait_for(
                lambda i=ids: _all_marked(pool, i),  # type: ignore[misc]
                timeout=10,
                what="the NOTIFY to wake the relay",
            )
    direct = await pool.fetchval(
        "SELECT bool_or(direct) FROM outbox_message WHERE message_id = ANY($1::uuid[])", ids
    )
    assert direct is False
    assert len(await probe.drain()) == 4
