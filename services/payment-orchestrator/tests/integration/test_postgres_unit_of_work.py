"""The orchestrator's unit of work in PostgreSQL: the handlers' flows on the real schema,
and the single statements the hot paths rely on."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from fluxpay_testing.infra import wait_for

from fluxpay_common.messages import (
    ProviderPaymentUpdate,
    ProviderRefundUpdate,
    RefundPayment,
    SettledMovementsQuery,
    provider_update_id,
)
from fluxpay_common.outbox import OutboxRelay
from payment_orchestrator.adapters.postgres import postgres_unit_of_work
from payment_orchestrator.domain.status import PaymentStatus
from payment_orchestrator.service_layer import handlers
from payment_orchestrator.service_layer.handlers import Dependencies
from payment_orchestrator.service_layer.updates import on_provider_update

from .commands import create_payment


async def _report(deps: Dependencies, payment_id: uuid.UUID, status: str, **fields: Any) -> None:
    update = ProviderPaymentUpdate(
        payment_id=payment_id,
        provider="mtn_momo",
        status=status,  # type: ignore[arg-type]
        **fields,
    )
    await handlers.handle_event(update, deps)


async def test_a_payment_its_transitions_and_its_outbox_in_the_database(
    pool: asyncpg.Pool, deps: Dependencies
) -> None:
    merchant = uuid.uuid4()
    payment_id = await create_payment(deps, merchant)
    await _report(deps, payment_id, "processing", psp_reference="psp-1")
    await _report(deps, payment_id, "completed", fee_minor=4_500, charged_amount_minor=306_000)
    row = await pool.fetchrow("SELECT * FROM payment WHERE id = $1", payment_id)
    assert row["status"] == "completed" and row["fee_minor"] == 4_500
    assert row["charged_amount_minor"] == 306_000
    assert row["psp_reference"] == "psp-1" and row["completed_at"] is not None
    assert row["version"] == 3
    moves = await pool.fetch(
        "SELECT from_status, to_status, reason FROM payment_transition"
        " WHERE payment_id = $1 ORDER BY id",
        payment_id,
    )
    assert [(m["from_status"], m["to_status"]) for m in moves] == [
        (None, "pending"),
        ("pending", "processing"),
        ("processing", "completed"),
    ]
    assert moves[2]["reason"] == "provider:mtn_momo"
    keys = await pool.fetch(
        "SELECT routing_key FROM outbox_message"
        " WHERE position(convert_to($1, 'UTF8') in body) > 0 ORDER BY id",
        str(payment_id),
    )
    assert [k["routing_key"] for k in keys] == [
        "collect.payment.created",
        "connector.mtn_momo",
        "collect.payment.processing",
        "collect.payment.completed",
    ]


class _RecordingBroker:
    """Takes every publication (as a broker with confirms would) and remembers its body."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def publish(self, body: bytes, **_: Any) -> None:
        self.bodies.append(body)


async def test_a_unit_of_work_hands_its_messages_to_the_relay_once_it_commits(
    pool: asyncpg.Pool, deps: Dependencies
) -> None:
    broker = _RecordingBroker()
    relay = OutboxRelay(pool, broker, idle_poll_seconds=60, direct_grace_seconds=60)  # type: ignore[arg-type]
    direct = replace(deps, open_uow=postgres_unit_of_work(pool, relay))
    task = asyncio.create_task(relay.run())
    try:
        payment_id = await create_payment(direct, uuid.uuid4())
        await _report(direct, payment_id, "processing", psp_reference="psp-1")
        await _report(direct, payment_id, "completed", fee_minor=0, charged_amount_minor=3000)

        async def marked() -> list[asyncpg.Record] | None:
            rows = await pool.fetch(
                "SELECT direct, published_at, body FROM outbox_message"
                " WHERE position(convert_to($1, 'UTF8') in body) > 0 ORDER BY id",
                str(payment_id),
            )
            return rows if all(r["published_at"] for r in rows) else None

        rows = await wait_for(marked, what="the payment's messages published and marked")
    finally:
        await relay.close()
        await task
    assert [r["direct"] for r in rows] == [True] * 4
    mine = [b for b in broker.bodies if str(payment_id).encode() in b]
    # Each once, in commit order.
    assert mine == [bytes(r["body"]) for r in rows]


async def test_a_redelivered_update_is_claimed_once_and_a_late_success_recorded(
    pool: asyncpg.Pool, deps: Dependencies
) -> None:
    payment_id = await create_payment(deps, uuid.uuid4())
    failed = ProviderPaymentUpdate(
        payment_id=payment_id, provider="mtn_momo", status="failed", failure_code="timeout"
    )
    await handlers.handle_event(failed, deps)
    await handlers.handle_event(failed, deps)
    await _report(deps, payment_id, "completed")
    row = await pool.fetchrow("SELECT * FROM payment WHERE id = $1", payment_id)
    assert row["status"] == "completed" and row["late_success"]
    assert row["failure_code"] is None and row["version"] == 3
    with pytest.raises(LookupError):
        await _report(deps, uuid.uuid4(), "completed")


async def test_expiry_refunds_and_the_reconciliation_door(
    pool: asyncpg.Pool, deps: Dependencies
) -> None:
    merchant = uuid.uuid4()
    due = await create_payment(deps, merchant, expires_in_seconds=300)
    await pool.execute(
        "UPDATE payment SET expires_at = now() - interval '1 second' WHERE id = $1", due
    )
    assert await handlers.expire_due(deps) >= 1
    assert await pool.fetchval("SELECT status FROM payment WHERE id = $1", due) == "expired"

    paid = await create_payment(deps, merchant)
    await _report(deps, paid, "completed")
    refund = RefundPayment(
        merchant_id=merchant,
        environment="live",
        reference_or_id=str(paid),
        amount=1000,
        idempotency_key="r1",
    )
    first, again = (
        await handlers.handle_command(refund, deps),
        await handlers.handle_command(refund, deps),
    )
    assert first.refund is not None and again.refund == first.refund and not again.created
    settled = ProviderRefundUpdate(
        payment_id=paid, refund_id=first.refund.id, provider="mtn_momo", status="completed"
    )
    await handlers.handle_event(settled, deps)
    row = await pool.fetchrow("SELECT * FROM payment WHERE id = $1", paid)
    assert row["status"] == PaymentStatus.COMPLETED and row["refunded_amount"] == 1000

    now = datetime.now(UTC)
    window = SettledMovementsQuery(
        start=now - timedelta(minutes=5), end=now + timedelta(minutes=5), merchant_id=merchant
    )
    answer = await handlers.handle_command(window, deps)
    found = {(m["kind"], m["amount_minor"]) for m in answer.data["movements"]}
    assert found == {("payment", 300_000), ("refund", 100_000)}
    by_id = await handlers.handle_command(
        SettledMovementsQuery(refund_ids=[first.refund.id], payment_ids=[due]), deps
    )
    assert [m["kind"] for m in by_id.data["movements"]] == ["refund"]


async def test_the_claim_looks_for_the_predecessor_in_the_same_statement(
    pool: asyncpg.Pool, deps: Dependencies
) -> None:
    payment_id = await create_payment(deps, uuid.uuid4())
    applied, missing = provider_update_id(payment_id, 1), provider_update_id(payment_id, 2)
    await pool.execute(
        "INSERT INTO inbox_message (message_id, consumer) VALUES ($1, 'test')", applied
    )
    async with deps.open_uow() as uow:
        after_applied = await uow.claim_and_lock(payment_id, uuid.uuid4(), "test", applied)
        after_missing = await uow.claim_and_lock(payment_id, uuid.uuid4(), "test", missing)
        unnumbered = await uow.claim_and_lock(payment_id, uuid.uuid4(), "test")
    assert after_applied.payment is not None and after_applied.payment.id == payment_id
    assert after_applied.first_time and after_applied.predecessor_applied
    assert after_missing.first_time and not after_missing.predecessor_applied
    assert unnumbered.predecessor_applied


async def test_an_update_waiting_on_its_predecessors_lock_applies_once_it_commits(
    pool: asyncpg.Pool, deps: Dependencies
) -> None:
    """The claim's snapshot predates the predecessor's commit it waited for: the update must
    still apply at once rather than be sent back to wait."""
    payment_id = await create_payment(deps, uuid.uuid4())
    completed = ProviderPaymentUpdate(
        payment_id=payment_id,
        provider="mtn_momo",
        status="completed",
        sequence=2,
        message_id=provider_update_id(payment_id, 2),
    )
    async with pool.acquire() as predecessor, predecessor.transaction():
        await predecessor.execute(
            "INSERT INTO inbox_message (message_id, consumer) VALUES ($1, 'test')",
            provider_update_id(payment_id, 1),
        )
        await predecessor.execute("SELECT 1 FROM payment WHERE id = $1 FOR UPDATE", payment_id)
        waiting = asyncio.create_task(on_provider_update(completed, deps, in_order=True))

        async def blocked() -> bool:
            return bool(
                await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE '%predecessor_applied%' AND datname = current_database()"
                )
            )

        await wait_for(blocked, timeout=10, what="the claim waiting for the row lock")
    payment = await asyncio.wait_for(waiting, 10)
    assert payment is not None and payment.status is PaymentStatus.COMPLETED
