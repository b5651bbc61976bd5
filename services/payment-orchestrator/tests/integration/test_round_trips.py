"""The orchestrator's hot path in PostgreSQL, counted: a create is one statement, a provider
update four round trips (BEGIN, claim and lock, save with its messages, COMMIT), and the
guarantees hold as before (one effect per message, per-payment order, nothing announced
by a write that did not commit, every message handed to the relay once committed)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import asyncpg
import orjson
import pytest
from fluxpay_testing.infra import wait_for
from fluxpay_testing.statements import CountingPool, shapes

from fluxpay_common.outbox import OutboxRelay
from fluxpay_common.topology import PAYMENT_LINK_USE_KEY
from payment_orchestrator.adapters.postgres import postgres_unit_of_work
from payment_orchestrator.domain.payment import PaymentChange
from payment_orchestrator.domain.state_machine import Trigger
from payment_orchestrator.domain.status import PaymentStatus
from payment_orchestrator.service_layer import handlers
from payment_orchestrator.service_layer.effects import payment_event_messages
from payment_orchestrator.service_layer.handlers import Dependencies
from payment_orchestrator.service_layer.updates import OrderWait, on_published_update

from .commands import create_command, provider_update
from .recording import RecordingBroker


@pytest.fixture
def deps(counted_deps: Dependencies) -> Dependencies:
    return counted_deps


async def _warm_up(counted: CountingPool, deps: Dependencies) -> None:
    """asyncpg looks a statement's new types up once per connection: not counted."""
    reply = await handlers.handle_command(create_command(uuid.uuid4()), deps)
    assert reply.payment is not None
    for sequence, status in enumerate(("processing", "completed"), start=1):
        await handlers.handle_event(provider_update(reply.payment.id, status, sequence), deps)
    await counted.taken()


async def _outbox(pool: asyncpg.Pool, payment_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT message_id, routing_key, direct, body FROM outbox_message"
        " WHERE position(convert_to($1, 'UTF8') in body) > 0 ORDER BY id",
        str(payment_id),
    )


async def _published(
    pool: asyncpg.Pool, broker: RecordingBroker, payment_id: uuid.UUID, count: int
) -> list[tuple[str, uuid.UUID]]:
    async def all_published() -> list[tuple[str, uuid.UUID]] | None:
        rows = await _outbox(pool, payment_id)
        mine = [p for p in broker.published if p[1] in {r["message_id"] for r in rows}]
        return mine if len(rows) == count and len(mine) == count else None

    return await wait_for(all_published, timeout=10, what=f"{count} messages handed over")


async def test_a_create_is_one_statement_and_an_update_four_round_trips(
    pool: asyncpg.Pool,
    counted: CountingPool,
    deps: Dependencies,
    relay: tuple[OutboxRelay, RecordingBroker],
) -> None:
    await _warm_up(counted, deps)
    reply = await handlers.handle_command(create_command(uuid.uuid4()), deps)
    assert reply.payment is not None and reply.created
    payment_id = reply.payment.id
    assert shapes(await counted.taken(), 2) == ["WITH created"]
    for sequence, status in enumerate(("processing", "completed"), start=1):
        await handlers.handle_event(provider_update(payment_id, status, sequence), deps)
        assert shapes(await counted.taken(), 1) == ["BEGIN", "WITH", "WITH", "COMMIT"]
    published = await _published(pool, relay[1], payment_id, 4)
    assert [key for key, _ in published] == [
        "collect.payment.created",
        "connector.mtn_momo",
        "collect.payment.processing",
        "collect.payment.completed",
    ]
    row = await pool.fetchrow("SELECT * FROM payment WHERE id = $1", payment_id)
    assert row["status"] == "completed" and row["version"] == 3
    transitions = await pool.fetchval(
        "SELECT count(*) FROM payment_transition WHERE payment_id = $1", payment_id
    )
    assert transitions == 3


async def test_the_events_show_the_clock_the_rows_store(
    pool: asyncpg.Pool, deps: Dependencies
) -> None:
    """The events are built before the statement writes: they must carry what it stored."""
    reply = await handlers.handle_command(create_command(uuid.uuid4()), deps)
    assert reply.payment is not None
    payment_id = reply.payment.id
    await handlers.handle_event(provider_update(payment_id, "completed", 1), deps)
    row = await pool.fetchrow("SELECT * FROM payment WHERE id = $1", payment_id)
    created, completed = [
        orjson.loads(bytes(r["body"]))["payment"]
        for r in await _outbox(pool, payment_id)
        if r["routing_key"] in ("collect.payment.created", "collect.payment.completed")
    ]
    assert reply.payment.created_at == row["created_at"]
    assert reply.payment.expires_at == row["expires_at"]
    assert created["created_at"] == completed["created_at"]
    assert completed["completed_at"] is not None
    assert row["completed_at"].isoformat().startswith(completed["completed_at"][:19])


async def test_a_link_payments_outcome_and_its_gateway_copy_in_the_save_statement(
    pool: asyncpg.Pool,
    counted: CountingPool,
    deps: Dependencies,
    relay: tuple[OutboxRelay, RecordingBroker],
) -> None:
    command = create_command(uuid.uuid4(), metadata={PAYMENT_LINK_USE_KEY: "use-1"})
    reply = await handlers.handle_command(command, deps)
    assert reply.payment is not None
    await _warm_up(counted, deps)
    await handlers.handle_event(provider_update(reply.payment.id, "completed", 1), deps)
    assert shapes(await counted.taken(), 1) == ["BEGIN", "WITH", "WITH", "COMMIT"]
    published = await _published(pool, relay[1], reply.payment.id, 4)
    assert [key for key, _ in published][2:] == [
        "collect.payment.completed",
        "gateway.payment.completed",
    ]


async def test_a_redelivered_update_and_a_repeated_create_write_nothing_more(
    pool: asyncpg.Pool, counted: CountingPool, deps: Dependencies
) -> None:
    command = create_command(uuid.uuid4())
    first = await handlers.handle_command(command, deps)
    again = await handlers.handle_command(command, deps)
    assert first.payment is not None and again.payment == first.payment and not again.created
    payment_id = first.payment.id
    update = provider_update(payment_id, "processing", 1)
    await handlers.handle_event(update, deps)
    await _warm_up(counted, deps)
    await handlers.handle_event(update, deps)
    # The claim finds the message in the inbox: nothing saved, the transaction ends there.
    assert shapes(await counted.taken(), 1) == ["BEGIN", "WITH", "COMMIT"]
    assert [r["routing_key"] for r in await _outbox(pool, payment_id)] == [
        "collect.payment.created",
        "connector.mtn_momo",
        "collect.payment.processing",
    ]
    row = await pool.fetchrow("SELECT version FROM payment WHERE id = $1", payment_id)
    assert row["version"] == 2
    transitions = await pool.fetchval(
        "SELECT count(*) FROM payment_transition WHERE payment_id = $1", payment_id
    )
    assert transitions == 2


async def test_concurrent_updates_of_one_payment_apply_in_order_once_each(
    pool: asyncpg.Pool, deps: Dependencies
) -> None:
    reply = await handlers.handle_command(create_command(uuid.uuid4()), deps)
    assert reply.payment is not None
    payment_id = reply.payment.id
    processing = provider_update(payment_id, "processing", 1)
    completed = provider_update(payment_id, "completed", 2)
    wait = OrderWait(budget_seconds=10)
    # The successor first, each update twice (a redelivery racing its original).
    await asyncio.gather(
        on_published_update(completed, deps, wait),
        on_published_update(completed, deps, wait),
        on_published_update(processing, deps, wait),
        on_published_update(processing, deps, wait),
    )
    assert [r["routing_key"] for r in await _outbox(pool, payment_id)] == [
        "collect.payment.created",
        "connector.mtn_momo",
        "collect.payment.processing",
        "collect.payment.completed",
    ]
    moves = await pool.fetch(
        "SELECT to_status FROM payment_transition WHERE payment_id = $1 ORDER BY id", payment_id
    )
    assert [m["to_status"] for m in moves] == ["pending", "processing", "completed"]
    row = await pool.fetchrow("SELECT status, version FROM payment WHERE id = $1", payment_id)
    assert (row["status"], row["version"]) == ("completed", 3)


async def test_a_save_rolled_back_leaves_no_row_and_hands_nothing_over(
    pool: asyncpg.Pool, deps: Dependencies, relay: tuple[OutboxRelay, RecordingBroker]
) -> None:
    reply = await handlers.handle_command(create_command(uuid.uuid4()), deps)
    assert reply.payment is not None
    payment_id = reply.payment.id
    await _published(pool, relay[1], payment_id, 2)
    with pytest.raises(RuntimeError, match="after the save"):
        async with deps.open_uow() as uow:
            payment = await uow.lock(payment_id)
            assert payment is not None
            change = payment.apply(Trigger.EXPIRE)
            assert isinstance(change, PaymentChange)
            change = change.stored_at(uow.now())
            [event] = payment_event_messages(deps, "collect.payment.expired", change.after, "")
            saved = await uow.save(change, "test", None, [event])
            assert saved.status is PaymentStatus.EXPIRED
            raise RuntimeError("after the save")
    await relay[0].flush()
    # The sweep is off and nothing was handed over: the broker never hears of it.
    assert event[2].message_id not in {m for _, m in relay[1].published}
    assert [r["routing_key"] for r in await _outbox(pool, payment_id)] == [
        "collect.payment.created",
        "connector.mtn_momo",
    ]
    row = await pool.fetchrow("SELECT status, version FROM payment WHERE id = $1", payment_id)
    assert (row["status"], row["version"]) == ("pending", 1)


async def test_without_a_relay_the_rows_wait_for_the_sweep(
    pool: asyncpg.Pool, deps: Dependencies
) -> None:
    plain = replace(deps, open_uow=postgres_unit_of_work(pool))
    reply = await handlers.handle_command(create_command(uuid.uuid4()), plain)
    assert reply.payment is not None
    rows = await _outbox(pool, reply.payment.id)
    assert [r["direct"] for r in rows] == [False, False]
