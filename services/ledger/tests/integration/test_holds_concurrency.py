"""Refund holds in PostgreSQL: concurrent reservations on one balance never overdraw it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from fluxpay_testing.infra import Infra
from fluxpay_testing.ledger import payment_event, payment_view, refund_event

from fluxpay_common.db import create_pool, migrate
from fluxpay_common.messages import ReserveRefund
from ledger import queries
from ledger.adapters.postgres import postgres_books, postgres_holds
from ledger.domain.fees import FeeSchedule
from ledger.entrypoints.main import SCHEMA, migrations
from ledger.service_layer.handlers import handle_event
from ledger.service_layer.holds import reserve_refund

FEES = FeeSchedule()


@pytest.fixture(scope="module")
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(infra.database_url, SCHEMA, max_size=12)
    await migrate(pool, SCHEMA, migrations())
    yield pool
    await pool.close()


async def test_ten_concurrent_holds_on_one_balance_take_only_what_it_covers(
    pool: asyncpg.Pool,
) -> None:
    merchant = uuid.uuid4()
    payments = [payment_view(amount=1000) for _ in range(10)]
    for payment in payments:
        await handle_event(payment_event(payment, merchant), postgres_books(pool), FEES)
    # 10 x 985 XOF available after fees: 9 refunds of 1 000 fit, the tenth does not.
    requests = [
        ReserveRefund(
            merchant_id=merchant,
            environment="test",
            refund_id=uuid.uuid4(),
            payment_id=payment.id,
            currency="XOF",
            amount_minor=100_000,
        )
        for payment in payments
    ]
    open_holds = postgres_holds(pool)
    decisions = await asyncio.gather(*(reserve_refund(r, open_holds) for r in requests))
    assert sum(d.held for d in decisions) == 9
    async with pool.acquire() as conn:
        assert await queries.balances(conn, merchant, "test") == {"XOF": 85_000}
    # Booking the held refunds moves the money from the hold to the books: no change.
    for request, decision, payment in zip(requests, decisions, payments, strict=True):
        if decision.held:
            event = refund_event(payment, merchant, 1000, refund_id=request.refund_id)
            await handle_event(event, postgres_books(pool), FEES)
    async with pool.acquire() as conn:
        assert await queries.balances(conn, merchant, "test") == {"XOF": 85_000}
        held = await conn.fetchval(
            "SELECT count(*) FROM refund_hold WHERE merchant_id = $1 AND status = 'held'",
            merchant,
        )
    assert held == 0
