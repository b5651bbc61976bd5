"""`ledger.events` in batches on the real RabbitMQ and PostgreSQL: the worker's own handler
(`book_events`) under `BatchConsumer`, on a fresh queue declared as the platform declares
`ledger.events` (with its DLQ), fed a batch of messages fetched unacknowledged at once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

import aio_pika
import asyncpg
import pytest
from fluxpay_testing.infra import Infra
from fluxpay_testing.ledger import payment_event, payment_view, refund_event
from fluxpay_testing.queues import fresh_route, queue_depth
from fluxpay_testing.statements import CountingPool, shapes

from fluxpay_common import topology
from fluxpay_common.batch_consumer import BatchConsumer
from fluxpay_common.db import create_pool, migrate
from fluxpay_common.messages import DomainEvent, Message, domain_event_adapter
from ledger import bootstrap
from ledger.adapters.postgres import postgres_holds
from ledger.config import Settings
from ledger.entrypoints.main import SCHEMA, book_events, migrations
from ledger.service_layer.handlers import CONSUMER

DELIVERY_LIMIT = 3


@pytest.fixture(scope="module")
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(infra.database_url, SCHEMA)
    await migrate(pool, SCHEMA, migrations())
    yield pool
    await pool.close()


@pytest.fixture
def settings(infra: Infra) -> Settings:
    return Settings(DATABASE_URL=infra.database_url, RABBITMQ_URL=infra.rabbitmq_url)


@pytest.fixture
async def channel(infra: Infra) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(infra.rabbitmq_url)
    yield await connection.channel()
    await connection.close()


@pytest.fixture
async def route(infra: Infra) -> AsyncIterator[topology.Route]:
    """A fresh queue shaped like `ledger.events` (quorum, delivery limit, DLQ)."""
    async with fresh_route(infra, "test.ledger.events", DELIVERY_LIMIT) as route:
        yield route


@pytest.fixture
def counted(pool: asyncpg.Pool) -> CountingPool:
    return CountingPool(pool)


@pytest.fixture
def consumer(
    counted: CountingPool, settings: Settings, route: topology.Route
) -> BatchConsumer[DomainEvent]:
    deps = bootstrap.dependencies(counted, settings)  # type: ignore[arg-type]
    handler = book_events(deps)
    url = settings.rabbitmq_url.get_secret_value()
    return BatchConsumer(url, route, domain_event_adapter, handler, batch_size=50, retry_seconds=0)


async def _deliver(
    url: str, route: topology.Route, consumer: BatchConsumer[DomainEvent], events: Sequence[Message]
) -> None:
    """Publish `events`, fetch them all unacknowledged on one channel, hand them over as one
    batch; the channel is closed after, so anything left unsettled returns to the queue."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for event in events:
            await channel.default_exchange.publish(
                aio_pika.Message(event.to_bytes(), message_id=str(event.message_id)),
                routing_key=route.queue,
            )
        queue = await channel.get_queue(route.queue, ensure=False)
        batch = [await queue.get(no_ack=False, timeout=10) for _ in events]
        await consumer.handle(batch)
    finally:
        await connection.close()


async def _entries(pool: asyncpg.Pool, payment_ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT e.payment_id, e.kind, sum(p.amount_minor) AS total, count(p.*) AS legs"
        " FROM journal_entry e JOIN posting p ON p.entry_id = e.id"
        " WHERE e.payment_id = ANY($1::uuid[]) GROUP BY e.id ORDER BY e.payment_id, e.kind",
        list(payment_ids),
    )


async def _handled(pool: asyncpg.Pool, events: Sequence[Message]) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM inbox_message WHERE message_id = ANY($1::uuid[])"
            " AND consumer = $2",
            [e.message_id for e in events],
            CONSUMER,
        )
    )


async def test_a_batch_of_completed_payments_books_each_once_in_one_statement(
    infra, pool, counted, channel, route, consumer
) -> None:
    merchant = uuid.uuid4()
    # A first payment: the merchant's accounts found (created) and kept, as by the worker.
    await _deliver(
        infra.rabbitmq_url,
        route,
        consumer,
        [payment_event(payment_view(), merchant, fee_minor=500)],
    )
    opened = shapes(await counted.taken(), 1)
    assert opened[0] == "BEGIN" and opened[-1] == "COMMIT"
    payments = [payment_view(amount=1000 * (i + 1)) for i in range(6)]
    events = [payment_event(p, merchant, fee_minor=500) for p in payments]
    await counted.taken()

    await _deliver(infra.rabbitmq_url, route, consumer, events)

    assert shapes(await counted.taken()) == ["WITH claimed AS"]
    entries = await _entries(pool, [p.id for p in payments])
    assert sorted(e["payment_id"] for e in entries) == sorted(p.id for p in payments)
    assert all(e["kind"] == "payment" and e["total"] == 0 and e["legs"] >= 4 for e in entries)
    assert await _handled(pool, events) == len(events)
    assert await queue_depth(channel, route.queue) == 0  # acknowledged


async def test_a_redelivered_batch_books_nothing_twice(
    infra, pool, channel, route, consumer
) -> None:
    merchant, payment = uuid.uuid4(), payment_view(amount=3000)
    completed = payment_event(payment, merchant)
    refund = refund_event(payment, merchant, 1000)
    # The same payment completed again under another event id, in the same batch.
    late = payment_event(payment, merchant, late_success=True)
    batch = [completed, refund, late]
    await _deliver(infra.rabbitmq_url, route, consumer, batch)
    before = await pool.fetchval(
        "SELECT count(*) FROM posting p JOIN journal_entry e ON e.id = p.entry_id"
        " WHERE e.payment_id = $1",
        payment.id,
    )

    # A crash before the ack: the whole batch again, and a publisher's duplicate inside it.
    await _deliver(infra.rabbitmq_url, route, consumer, [*batch, completed])

    entries = await _entries(pool, [payment.id])
    assert [e["kind"] for e in entries] == ["payment", "refund"]
    assert all(e["total"] == 0 for e in entries)
    after = await pool.fetchval(
        "SELECT count(*) FROM posting p JOIN journal_entry e ON e.id = p.entry_id"
        " WHERE e.payment_id = $1",
        payment.id,
    )
    assert after == before
    assert await _handled(pool, batch) == 3
    assert await queue_depth(channel, route.queue) == 0


async def test_an_unbookable_event_is_dead_lettered_at_once_and_the_rest_of_its_batch_books(
    infra, pool, channel, route, consumer
) -> None:
    merchant = uuid.uuid4()
    payments = [payment_view() for _ in range(3)]
    nameless = payment_event(payment_view(), merchant, provider=None)
    good = [payment_event(p, merchant) for p in payments]
    await _deliver(infra.rabbitmq_url, route, consumer, [good[0], nameless, *good[1:]])

    entries = await _entries(pool, [p.id for p in payments])
    assert sorted(e["payment_id"] for e in entries) == sorted(p.id for p in payments)
    assert await _handled(pool, good) == 3
    assert await _handled(pool, [nameless]) == 0
    assert await _entries(pool, [nameless.payment.id]) == []
    assert await queue_depth(channel, route.queue) == 0  # nothing left to be redelivered
    dlq = await channel.get_queue(f"{route.queue}.dlq", ensure=False)
    dead = await dlq.get(fail=False)
    assert dead is not None
    await dead.ack()
    assert dead.message_id == str(nameless.message_id)
    # Rejected on its first delivery, not returned until the delivery limit.
    assert dead.headers["x-death"][0]["reason"] == "rejected"  # type: ignore[index]


async def test_refunds_in_one_batch_end_their_holds_with_their_entries(
    infra, pool, route, consumer
) -> None:
    merchant, payment = uuid.uuid4(), payment_view(amount=5000)
    await _deliver(infra.rabbitmq_url, route, consumer, [payment_event(payment, merchant)])
    refunds = [
        refund_event(payment, merchant, 1000),
        refund_event(payment, merchant, 700, completed=False),
        refund_event(payment, merchant, 500),
    ]
    for refund in refunds:
        await pool.execute(
            "INSERT INTO refund_hold (refund_id, payment_id, merchant_id, environment,"
            " currency, amount_minor) VALUES ($1, $2, $3, 'test', 'XOF', $4)",
            refund.refund.id,
            payment.id,
            merchant,
            refund.refund.amount * 100,
        )

    key = (merchant, "test", "XOF")
    async with postgres_holds(pool)() as holds:
        booked, held = await holds.booked_and_held(key)

    await _deliver(infra.rabbitmq_url, route, consumer, refunds)

    # Booked refunds move their amount from the holds to the books; the failed one's returns.
    async with postgres_holds(pool)() as holds:
        assert await holds.booked_and_held(key) == (booked - 150_000, held - 220_000)
    statuses = await pool.fetch(
        "SELECT refund_id, status FROM refund_hold WHERE payment_id = $1", payment.id
    )
    assert {r["refund_id"]: r["status"] for r in statuses} == {
        refunds[0].refund.id: "consumed",
        refunds[1].refund.id: "released",
        refunds[2].refund.id: "consumed",
    }
    kinds = [e["kind"] for e in await _entries(pool, [payment.id])]
    assert kinds == ["payment", "refund", "refund"]
