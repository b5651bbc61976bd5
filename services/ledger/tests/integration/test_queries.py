"""Balances, statements and reconciliation read from books written by the handler."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta

import asyncpg
import pytest
from fluxpay_testing.infra import Infra
from fluxpay_testing.ledger import NOW, payment_event, payment_view, refund_event

from fluxpay_common.db import create_pool, migrate
from fluxpay_common.messages import PaymentView
from ledger import queries
from ledger.adapters.postgres import postgres_books
from ledger.domain.books import EntryKind
from ledger.domain.fees import FeeSchedule
from ledger.domain.reconciliation import Movement, compare
from ledger.entrypoints.main import SCHEMA, migrations
from ledger.service_layer.handlers import handle_event

FEES = FeeSchedule()


@pytest.fixture(scope="module")
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(infra.database_url, SCHEMA)
    await migrate(pool, SCHEMA, migrations())
    yield pool
    await pool.close()


async def _pay(
    pool: asyncpg.Pool, merchant: uuid.UUID, provider: str = "sandbox", **view: object
) -> PaymentView:
    payment = payment_view(**view)  # type: ignore[arg-type]
    await handle_event(
        payment_event(payment, merchant, provider=provider), postgres_books(pool), FEES
    )
    return payment


async def _refund(
    pool: asyncpg.Pool, payment: PaymentView, merchant: uuid.UUID, amount: int, provider: str
) -> uuid.UUID:
    event = refund_event(payment, merchant, amount, provider=provider)
    await handle_event(event, postgres_books(pool), FEES)
    return event.refund.id


async def test_balance_is_per_currency_and_scoped_to_merchant_and_environment(
    pool: asyncpg.Pool,
) -> None:
    merchant, other = uuid.uuid4(), uuid.uuid4()
    await _pay(pool, merchant, amount=3000)
    paid = await _pay(pool, merchant, amount=1000)
    await _pay(pool, merchant, amount=2000, currency="GHS")
    await _pay(pool, merchant, amount=7000, environment="live")
    await _pay(pool, other, amount=9000)
    await _refund(pool, paid, merchant, 400, "sandbox")
    async with pool.acquire() as conn:
        test = await queries.balances(conn, merchant, "test")
        live = await queries.balances(conn, merchant, "live")
        nobody = await queries.balances(conn, uuid.uuid4(), "test")
    # 1.5 % fee: 400 000 - 6 000 collected net, minus the 40 000 refunded.
    assert test == {"XOF": 394_000 - 40_000, "GHS": 197_000}
    assert live == {"XOF": 689_500}
    assert nobody == {}


async def test_transactions_page_newest_first_without_gaps_or_repeats(pool: asyncpg.Pool) -> None:
    merchant = uuid.uuid4()
    paid = [await _pay(pool, merchant, amount=1000 + i) for i in range(4)]
    await _refund(pool, paid[0], merchant, 100, "sandbox")
    seen: list[queries.BalanceTransaction] = []
    cursor, pages = None, 0
    async with pool.acquire() as conn:
        while True:
            page = await queries.transactions(conn, merchant, "test", 2, cursor)
            seen += page.data
            pages += 1
            if not page.has_more:
                break
            cursor = page.data[-1].id
    assert pages == 3 and len({t.id for t in seen}) == 5
    assert [t.created_at for t in seen] == sorted((t.created_at for t in seen), reverse=True)
    refund = next(t for t in seen if t.kind == "refund")
    assert (refund.amount_minor, refund.fee_minor, refund.net_minor) == (-10_000, 0, -10_000)
    payment = next(t for t in seen if t.payment_id == paid[3].id)
    assert (payment.amount_minor, payment.fee_minor, payment.net_minor) == (
        100_300,
        1_505,
        98_795,
    )


async def test_a_cursor_of_another_merchant_is_refused(pool: asyncpg.Pool) -> None:
    merchant, other = uuid.uuid4(), uuid.uuid4()
    await _pay(pool, other)
    async with pool.acquire() as conn:
        [theirs] = (await queries.transactions(conn, other, "test")).data
        with pytest.raises(queries.UnknownCursor):
            await queries.transactions(conn, merchant, "test", 10, theirs.id)


async def test_reconcile_lists_the_days_movements_for_a_provider(pool: asyncpg.Pool) -> None:
    merchant, provider = uuid.uuid4(), f"psp_{uuid.uuid4().hex[:8]}"
    day = date(2026, 6, 2)
    on_day = datetime(2026, 6, 2, 23, 59, tzinfo=NOW.tzinfo)
    paid = await _pay(pool, merchant, provider, amount=3000, completed_at=on_day)
    await _pay(pool, merchant, provider, amount=500, completed_at=on_day + timedelta(minutes=1))
    await _pay(pool, merchant, "sandbox", amount=800, completed_at=on_day)
    refund_id = await _refund(pool, paid, merchant, 1000, provider)
    async with pool.acquire() as conn:
        # The refund's event is dated NOW (June 1st), not June 2nd.
        report = await queries.reconcile(conn, day, provider)
        refunds_day = await queries.reconcile(conn, NOW.date(), provider)
    assert [(m.kind, m.amount_minor) for m in report.movements] == [(EntryKind.PAYMENT, 300_000)]
    assert report.movements[0].platform_fee_minor == 4_500 and report.problems == []
    [total] = report.totals
    assert (total.provider, total.kind, total.count, total.amount_minor) == (
        provider,
        "payment",
        1,
        300_000,
    )
    [refund] = refunds_day.movements
    assert refund.key == (EntryKind.REFUND, refund_id) and refund.amount_minor == 100_000
    expected = [Movement(EntryKind.PAYMENT, paid.id, None, "test", "XOF", 300_000)]
    assert compare(expected, report.movements) == []


async def test_reconcile_reports_a_refund_of_a_payment_never_booked(pool: asyncpg.Pool) -> None:
    merchant, provider = uuid.uuid4(), f"psp_{uuid.uuid4().hex[:8]}"
    never_booked = payment_view(amount=2000)
    await _refund(pool, never_booked, merchant, 500, provider)
    async with pool.acquire() as conn:
        report = await queries.reconcile(conn, NOW.date(), provider)
    assert report.problems == [f"payment {never_booked.id} refunded but never booked as collected"]
