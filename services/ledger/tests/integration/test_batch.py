"""A batch of payments, refunds and redeliveries, booked concurrently, agrees with itself:
event by event, or in batches (as the worker takes them) overlapping in any order.

Balances and the day's reconciliation are compared with what the events said happened.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import pytest
from fluxpay_testing.infra import Infra
from fluxpay_testing.ledger import payment_event, payment_view, refund_event

from fluxpay_common.db import create_pool, migrate
from fluxpay_common.messages import DomainEvent
from ledger import queries
from ledger.adapters.postgres import postgres_books
from ledger.domain.books import EntryKind
from ledger.domain.fees import FeeRule, FeeSchedule, platform_fee
from ledger.domain.reconciliation import Movement, compare
from ledger.entrypoints.main import SCHEMA, migrations
from ledger.service_layer.handlers import handle_events

DAY = date(2026, 5, 20)
AT = datetime(2026, 5, 20, 10, 30, tzinfo=UTC)
FEES = FeeSchedule(operators={"wave": FeeRule(percent_bp=100, fixed_minor=2_500)})


@pytest.fixture(scope="module")
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(infra.database_url, SCHEMA, max_size=12)
    await migrate(pool, SCHEMA, migrations())
    yield pool
    await pool.close()


@pytest.mark.parametrize("batch_size", [1, 8])
async def test_concurrent_batch_agrees_with_the_payments_and_refunds(
    pool: asyncpg.Pool, batch_size: int
) -> None:
    rng = random.Random(20260520)
    merchants = [uuid.uuid4() for _ in range(3)]
    provider = f"psp_{uuid.uuid4().hex[:8]}"
    available = dict.fromkeys(merchants, 0)
    expected: list[Movement] = []
    events: list[DomainEvent] = []
    for _ in range(40):
        merchant, amount = rng.choice(merchants), rng.randint(100, 100_000)
        view = payment_view(
            amount=amount, operator=rng.choice(["mtn", "wave", None]), completed_at=AT
        )
        events.append(
            payment_event(view, merchant, provider=provider, fee_minor=rng.choice([None, amount]))
        )
        expected.append(Movement(EntryKind.PAYMENT, view.id, None, "test", "XOF", amount * 100))
        available[merchant] += amount * 100 - platform_fee(
            FEES, merchant, view.operator, amount * 100
        )
        if rng.random() < 0.4:
            refunded = rng.randint(1, amount)
            refund = refund_event(view, merchant, refunded, provider=provider, occurred_at=AT)
            events.append(refund)
            expected.append(
                Movement(EntryKind.REFUND, view.id, refund.refund.id, "test", "XOF", refunded * 100)
            )
            available[merchant] -= refunded * 100
    deliveries = [*events, *rng.sample(events, 25)]
    rng.shuffle(deliveries)
    books = postgres_books(pool)
    batches = [deliveries[i : i + batch_size] for i in range(0, len(deliveries), batch_size)]
    # No retry here: a deadlock between overlapping batches would fail the test.
    await asyncio.gather(*(handle_events(batch, books, FEES) for batch in batches))

    async with pool.acquire() as conn:
        for merchant in merchants:
            assert await queries.balances(conn, merchant, "test") == {"XOF": available[merchant]}
        report = await queries.reconcile(conn, DAY, provider, "test")
    assert compare(expected, report.movements) == []
    assert report.problems == []
    collected = sum(m.amount_minor for m in expected if m.kind is EntryKind.PAYMENT)
    payments = next(t for t in report.totals if t.kind == "payment")
    assert (payments.count, payments.amount_minor) == (40, collected)
