"""The ledger worker against the real RabbitMQ and PostgreSQL: events in, books out.

The worker's own wiring (`register`) runs in-process on a real broker and pool; events are
published to `fluxpay.events` as the orchestrator's outbox relay does.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import asyncpg
import pytest
from fluxpay_testing.infra import Infra, wait_for
from fluxpay_testing.ledger import payment_event, payment_view, refund_event

from fluxpay_common import runtime, topology
from fluxpay_common.db import create_pool, migrate
from fluxpay_common.messages import LedgerQuery, Message, QueryReply
from fluxpay_common.outbox import OutboxRelay
from fluxpay_common.rpc import RpcClient
from ledger.config import Settings
from ledger.entrypoints.main import SCHEMA, migrations, register, started


@pytest.fixture(scope="module")
async def worker(infra: Infra) -> AsyncIterator[runtime.WorkerContext]:
    settings = Settings(DATABASE_URL=infra.database_url, RABBITMQ_URL=infra.rabbitmq_url)
    pool = await create_pool(infra.database_url, SCHEMA)
    await migrate(pool, SCHEMA, migrations())
    broker = runtime.make_broker(settings)
    supervisor = runtime.Supervisor()
    ctx = runtime.WorkerContext(
        "ledger", settings, pool, broker, supervisor, OutboxRelay(pool, broker)
    )
    await register(ctx)
    await broker.connect()
    await topology.declare_topology(broker, settings.delivery_limit)
    await broker.start()
    await ctx.consumers.start()
    await started(ctx)
    yield ctx
    await ctx.consumers.stop()
    await supervisor.stop()
    await broker.stop()
    await pool.close()


async def _publish(ctx: runtime.WorkerContext, event: Message, routing_key: str) -> None:
    await ctx.broker.publish(
        event.to_bytes(),
        exchange=topology.EVENTS.name,
        routing_key=routing_key,
        message_id=str(event.message_id),
        content_type="application/json",
    )


async def _handled(pool: asyncpg.Pool, message_id: uuid.UUID) -> bool:
    found = await pool.fetchval("SELECT 1 FROM inbox_message WHERE message_id = $1", message_id)
    return found is not None


async def _entries(pool: asyncpg.Pool, payment_id: uuid.UUID) -> list[asyncpg.Record]:
    # The end-to-end test's own query.
    return await pool.fetch(
        "SELECT e.id, e.kind, sum(p.amount_minor) AS total, count(p.*) AS legs"
        " FROM journal_entry e JOIN posting p ON p.entry_id = e.id"
        " WHERE e.payment_id = $1 GROUP BY e.id, e.kind ORDER BY e.kind",
        payment_id,
    )


async def test_redelivered_payment_and_its_refund_are_booked_once_each_and_balanced(
    worker: runtime.WorkerContext,
) -> None:
    merchant, payment = uuid.uuid4(), payment_view(amount=3000)
    completed = payment_event(payment, merchant, fee_minor=3_000)
    refund = refund_event(payment, merchant, 1000)
    await _publish(worker, completed, completed.type)
    await _publish(worker, completed, completed.type)
    await _publish(worker, refund, refund.type)
    # Something published after them all: once handled, the duplicate has been too.
    # (another merchant's completed payment: the ledger hears only events that move money)
    marker = payment_event(payment_view(), uuid.uuid4())
    await _publish(worker, marker, marker.type)

    async def booked() -> list[asyncpg.Record]:
        entries = await _entries(worker.pool, payment.id)
        return (
            entries if len(entries) == 2 and await _handled(worker.pool, marker.message_id) else []
        )

    entries = await wait_for(booked, timeout=20, what="the payment and refund entries")
    assert [e["kind"] for e in entries] == ["payment", "refund"]
    assert all(e["total"] == 0 and e["legs"] >= 2 for e in entries)
    events = await worker.pool.fetchval(
        "SELECT count(*) FROM journal_entry WHERE event_id = $1", completed.message_id
    )
    assert events == 1
    available = await worker.pool.fetchval(
        "SELECT -sum(p.amount_minor) FROM posting p JOIN account a ON a.id = p.account_id"
        " WHERE a.code = $1",
        f"merchant_available:{merchant}",
    )
    # 300 000 collected, 1.5 % platform fee (4 500) kept, 100 000 refunded.
    assert available == 300_000 - 4_500 - 100_000


async def test_database_refuses_to_change_a_posting(worker: runtime.WorkerContext) -> None:
    merchant, payment = uuid.uuid4(), payment_view()
    event = payment_event(payment, merchant)
    await _publish(worker, event, event.type)
    entries = await wait_for(
        lambda: _entries(worker.pool, payment.id), timeout=20, what="the payment entry"
    )
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await worker.pool.execute(
            "UPDATE posting SET amount_minor = amount_minor * 2 WHERE entry_id = $1",
            entries[0]["id"],
        )
    assert (await _entries(worker.pool, payment.id))[0]["total"] == 0


async def test_events_that_move_no_money_never_reach_the_ledger(
    worker: runtime.WorkerContext,
) -> None:
    merchant, payment = uuid.uuid4(), payment_view(status="failed", completed_at=None)
    failed = payment_event(payment, merchant, type="collect.payment.failed")
    await _publish(worker, failed, failed.type)
    # Published after it on the same exchange: once this is handled, the failed event would
    # have been too, had its routing key been bound to the ledger's queue.
    marker = payment_event(payment_view(), merchant)
    await _publish(worker, marker, marker.type)
    await wait_for(lambda: _handled(worker.pool, marker.message_id), what="the marker")
    assert not await _handled(worker.pool, failed.message_id)
    assert await _entries(worker.pool, payment.id) == []


async def _dead_lettered(url: str, message_id: uuid.UUID) -> str | None:
    """Why the message was dead-lettered, if it is in the ledger's DLQ; others are put back."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{topology.LEDGER_EVENTS.queue}.dlq", ensure=True)
        found, others = None, []
        while (message := await queue.get(fail=False)) is not None:
            if message.message_id == str(message_id):
                await message.ack()
                deaths: Any = message.headers["x-death"]
                found = str(deaths[0]["reason"])
            else:
                others.append(message)
        for message in others:
            await message.nack(requeue=True)
        return found
    finally:
        await connection.close()


async def test_unbookable_event_is_dead_lettered_at_once_and_leaves_no_trace(
    worker: runtime.WorkerContext, infra: Infra
) -> None:
    merchant, payment = uuid.uuid4(), payment_view()
    nameless = payment_event(payment, merchant, provider=None)
    await _publish(worker, nameless, nameless.type)
    reason = await wait_for(
        lambda: _dead_lettered(infra.rabbitmq_url, nameless.message_id),
        timeout=20,
        what="the unbookable event in ledger.events.dlq",
    )
    # Rejected on first delivery, not retried up to the delivery limit.
    assert reason == "rejected"
    assert not await _handled(worker.pool, nameless.message_id)
    assert await _entries(worker.pool, payment.id) == []


async def test_gateway_reads_the_balance_and_transactions_over_request_reply(
    worker: runtime.WorkerContext, infra: Infra
) -> None:
    merchant, payment = uuid.uuid4(), payment_view(amount=5000)
    event = payment_event(payment, merchant)
    await _publish(worker, event, event.type)
    await wait_for(lambda: _entries(worker.pool, payment.id), what="the payment entry")
    client = RpcClient(infra.rabbitmq_url, topology.COMMANDS.name, topology.LEDGER_QUERIES_KEY)
    await client.start()
    try:
        scope = {"merchant_id": merchant, "environment": "test"}
        balance = await client.call(LedgerQuery(type="ledger.balance", **scope), QueryReply, 10)
        listing = await client.call(
            LedgerQuery(type="ledger.transactions", **scope), QueryReply, 10
        )
        other = await client.call(
            LedgerQuery(type="ledger.balance", merchant_id=merchant, environment="live"),
            QueryReply,
            10,
        )
    finally:
        await client.stop()
    assert balance.data["available"] == [
        {"currency": "XOF", "amount": 4925, "amount_minor": 492_500}
    ]
    [transaction] = listing.data["data"]
    assert transaction["payment_id"] == str(payment.id)
    assert (transaction["amount_minor"], transaction["fee_minor"]) == (500_000, 7_500)
    assert other.data["available"] == []
