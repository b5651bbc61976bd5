"""Provider updates in batches on the real PostgreSQL (and RabbitMQ for the DLQ): one
transaction for many payments' updates, each applied once and in order, a few statements
per batch, the outbox handed over after the commit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aio_pika
import asyncpg
import pytest
from fluxpay_testing.infra import Infra, wait_for
from fluxpay_testing.queues import fresh_route, publish_raw, queue_depth
from fluxpay_testing.statements import CountingPool, shapes
from prometheus_client import REGISTRY

from fluxpay_common import topology
from fluxpay_common.batch_consumer import BatchConsumer
from fluxpay_common.messages import (
    ProviderPaymentUpdate,
    provider_update_adapter,
)
from fluxpay_common.outbox import OutboxRelay
from payment_orchestrator.service_layer import handlers
from payment_orchestrator.service_layer.handlers import Dependencies
from payment_orchestrator.service_layer.update_batches import on_update_batch
from payment_orchestrator.service_layer.updates import OrderWait

from .commands import create_payment, provider_update
from .recording import RecordingBroker

EVENTS = ["collect.payment.processing", "collect.payment.completed"]


@pytest.fixture
def deps(counted_deps: Dependencies) -> Dependencies:
    return counted_deps


def processing_then_completed(payment_ids: Sequence[uuid.UUID]) -> list[ProviderPaymentUpdate]:
    """Each payment's two updates, the successor delivered first."""
    return [
        u
        for p in payment_ids
        for u in (provider_update(p, "completed", 2), provider_update(p, "processing", 1))
    ]


async def moves(pool: asyncpg.Pool, payment_id: uuid.UUID) -> list[str]:
    rows = await pool.fetch(
        "SELECT to_status FROM payment_transition WHERE payment_id = $1 ORDER BY id", payment_id
    )
    return [r["to_status"] for r in rows]


async def events(pool: asyncpg.Pool, payment_id: uuid.UUID) -> list[str]:
    rows = await pool.fetch(
        "SELECT routing_key FROM outbox_message WHERE routing_key LIKE 'collect.payment.%'"
        " AND position(convert_to($1, 'UTF8') in body) > 0 ORDER BY id",
        str(payment_id),
    )
    return [r["routing_key"] for r in rows]


async def version(pool: asyncpg.Pool, payment_id: uuid.UUID) -> int:
    return int(await pool.fetchval("SELECT version FROM payment WHERE id = $1", payment_id))


async def test_a_batch_applies_several_payments_updates_in_order_in_one_transaction(
    pool: asyncpg.Pool,
    counted: CountingPool,
    deps: Dependencies,
    relay: tuple[OutboxRelay, RecordingBroker],
) -> None:
    payments = [await create_payment(deps, uuid.uuid4()) for _ in range(3)]
    await counted.taken()
    await handlers.handle_update_batch(processing_then_completed(payments), deps)
    # One claim-and-lock for the batch, one save per change, one commit.
    assert shapes(await counted.taken(), 2) == [
        "BEGIN",
        "WITH locked",
        *["WITH updated"] * 6,
        "COMMIT",
    ]
    for payment_id in payments:
        assert await moves(pool, payment_id) == ["pending", "processing", "completed"]
        assert await events(pool, payment_id) == ["collect.payment.created", *EVENTS]
        assert await version(pool, payment_id) == 3

    async def all_handed_over() -> bool:
        ids = await pool.fetch(
            "SELECT message_id FROM outbox_message WHERE routing_key = ANY($1::text[])"
            " AND position(convert_to($2, 'UTF8') in body) > 0",
            EVENTS,
            str(payments[-1]),
        )
        return {r["message_id"] for r in ids} <= {m for _, m in relay[1].published}

    await wait_for(all_handed_over, timeout=10, what="the batch's events handed over")


async def test_a_redelivered_batch_changes_nothing(
    pool: asyncpg.Pool, counted: CountingPool, deps: Dependencies
) -> None:
    payments = [await create_payment(deps, uuid.uuid4()) for _ in range(2)]
    batch = processing_then_completed(payments)
    await handlers.handle_update_batch(batch, deps)
    await counted.taken()
    await handlers.handle_update_batch(batch, deps)
    assert shapes(await counted.taken(), 2) == ["BEGIN", "WITH locked", "COMMIT"]
    for payment_id in payments:
        assert await moves(pool, payment_id) == ["pending", "processing", "completed"]
        assert await events(pool, payment_id) == ["collect.payment.created", *EVENTS]
        assert await version(pool, payment_id) == 3


async def test_an_unknown_payment_fails_its_batch_before_anything_is_written(
    pool: asyncpg.Pool, deps: Dependencies
) -> None:
    known = await create_payment(deps, uuid.uuid4())
    batch = [
        provider_update(known, "processing", 1),
        provider_update(uuid.uuid4(), "processing", 1),
    ]
    with pytest.raises(LookupError, match="unknown payments"):
        await handlers.handle_update_batch(batch, deps)
    assert await moves(pool, known) == ["pending"]
    claimed = await pool.fetchval(
        "SELECT count(*) FROM inbox_message WHERE message_id = $1", batch[0].message_id
    )
    assert claimed == 0
    # Alone (as the consumer narrows a failed batch down), the known one goes through.
    await handlers.handle_update_batch(batch[:1], deps)
    assert await moves(pool, known) == ["pending", "processing"]


async def test_a_successor_without_its_predecessor_waits_for_it_after_the_commit(
    pool: asyncpg.Pool, deps: Dependencies
) -> None:
    early, other = (
        await create_payment(deps, uuid.uuid4()),
        await create_payment(deps, uuid.uuid4()),
    )
    first = [provider_update(early, "completed", 2), provider_update(other, "processing", 1)]
    late = await on_update_batch(first, deps, OrderWait(budget_seconds=30))
    # The batch committed without the successor, left to finish (the consumer runs it).
    assert list(late) == [0]
    assert await moves(pool, other) == ["pending", "processing"]
    waiting = asyncio.create_task(late[0]())
    await asyncio.wait({waiting}, timeout=0.2)
    assert not waiting.done()
    assert await moves(pool, early) == ["pending"]
    # Its predecessor, in a batch of its own (another orchestrator's, or the next one).
    await on_update_batch([provider_update(early, "processing", 1)], deps)
    await asyncio.wait_for(waiting, timeout=10)
    assert await moves(pool, early) == ["pending", "processing", "completed"]
    assert await events(pool, early) == ["collect.payment.created", *EVENTS]


async def test_a_successor_whose_predecessor_never_comes_applies_after_the_wait(
    pool: asyncpg.Pool, deps: Dependencies
) -> None:
    payment_id = await create_payment(deps, uuid.uuid4())
    batch = [provider_update(payment_id, "completed", 2)]
    late = await on_update_batch(batch, deps, OrderWait(budget_seconds=0.05))
    await late[0]()
    assert await moves(pool, payment_id) == ["pending", "completed"]


@pytest.fixture
async def route(infra: Infra) -> AsyncIterator[topology.Route]:
    """A queue of its own shaped like the updates' (delivery limit 2), with its DLQ."""
    async with fresh_route(infra, "test.orchestrator-updates", 2) as route:
        yield route


async def test_an_unknown_payment_is_dead_lettered_and_its_batch_applied(
    infra: Infra, pool: asyncpg.Pool, deps: Dependencies, route: topology.Route
) -> None:
    known = [await create_payment(deps, uuid.uuid4()) for _ in range(2)]
    unknown = provider_update(uuid.uuid4(), "processing", 1)
    batch = [
        provider_update(known[0], "processing", 1),
        unknown,
        provider_update(known[1], "processing", 1),
    ]
    connection = await aio_pika.connect(infra.rabbitmq_url)
    channel = await connection.channel()
    for message in batch:
        await publish_raw(channel, route.queue, message.to_bytes())

    async def on_updates(updates: Sequence[Any]) -> None:
        await handlers.handle_update_batch(updates, deps)

    consumer = BatchConsumer(
        infra.rabbitmq_url, route, provider_update_adapter, on_updates, batch_size=10,
        retry_seconds=0, delivery_limit=2,
    )  # fmt: skip
    task = asyncio.create_task(consumer.run())
    try:

        async def settled() -> bool:
            dead = await queue_depth(channel, route.dead_letter_queue().name)
            return dead == 1 and await queue_depth(channel, route.queue) == 0

        await wait_for(settled, timeout=30, what="the unknown update dead-lettered")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    for payment_id in known:
        assert await moves(pool, payment_id) == ["pending", "processing"]
    # What pages the operator (FluxPayDeadLetters).
    labels = {"queue": route.queue, "reason": "handler_failed"}
    assert REGISTRY.get_sample_value("fluxpay_messages_dead_lettered_total", labels) == 1
    dlq = await channel.get_queue(route.dead_letter_queue().name, ensure=False)
    dead = await dlq.get()
    await dead.ack()
    assert ProviderPaymentUpdate.model_validate_json(dead.body).payment_id == unknown.payment_id
    await connection.close()
