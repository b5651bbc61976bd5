"""Booking in PostgreSQL: one statement per event once its accounts are known, and the
same guarantees (once per event, once per payment and refund, holds ended with the refund,
balanced entries)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from fluxpay_testing.infra import Infra
from fluxpay_testing.ledger import payment_event, payment_view, refund_event
from fluxpay_testing.statements import CountingPool, shapes

from fluxpay_common.db import create_pool, migrate
from ledger.adapters.postgres import postgres_books
from ledger.domain.accounts import Chart
from ledger.domain.books import book
from ledger.domain.fees import FeeSchedule
from ledger.entrypoints.main import SCHEMA, migrations
from ledger.service_layer.handlers import CONSUMER, fact_from, handle_event
from ledger.service_layer.ports import Booking, OpenBooks

FEES = FeeSchedule()


@pytest.fixture(scope="module")
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(infra.database_url, SCHEMA)
    await migrate(pool, SCHEMA, migrations())
    yield pool
    await pool.close()


@pytest.fixture
def counted(pool: asyncpg.Pool) -> CountingPool:
    return CountingPool(pool)


@pytest.fixture
def open_books(counted: CountingPool) -> OpenBooks:
    return postgres_books(counted)  # type: ignore[arg-type]


async def _entries(pool: asyncpg.Pool, payment_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT e.kind, sum(p.amount_minor) AS total, count(p.*) AS legs"
        " FROM journal_entry e JOIN posting p ON p.entry_id = e.id"
        " WHERE e.payment_id = $1 GROUP BY e.id, e.kind ORDER BY e.kind",
        payment_id,
    )


async def test_a_completed_payment_is_one_statement_once_its_accounts_are_known(
    pool: asyncpg.Pool, counted: CountingPool, open_books: OpenBooks
) -> None:
    merchant = uuid.uuid4()
    first, second = payment_view(), payment_view()
    assert await handle_event(payment_event(first, merchant), open_books, FEES) is not None
    # First use of the merchant's account: found or created with the booking, in a transaction.
    opened = shapes(await counted.taken(), 1)
    assert opened[0] == "BEGIN" and opened[-1] == "COMMIT"
    assert await handle_event(payment_event(second, merchant), open_books, FEES) is not None
    assert shapes(await counted.taken()) == ["WITH claimed AS"]
    for payment in (first, second):
        [entry] = await _entries(pool, payment.id)
        assert entry["kind"] == "payment" and entry["total"] == 0 and entry["legs"] >= 2


async def test_a_redelivery_and_a_second_completion_book_nothing_more(
    pool: asyncpg.Pool, open_books: OpenBooks
) -> None:
    merchant, payment = uuid.uuid4(), payment_view()
    completed = payment_event(payment, merchant)
    late = payment_event(payment, merchant, late_success=True)
    assert await handle_event(completed, open_books, FEES) is not None
    assert await handle_event(completed, open_books, FEES) is None
    assert await handle_event(late, open_books, FEES) is None
    assert len(await _entries(pool, payment.id)) == 1
    handled = await pool.fetchval(
        "SELECT count(*) FROM inbox_message WHERE message_id = ANY($1::uuid[]) AND consumer = $2",
        [completed.message_id, late.message_id],
        CONSUMER,
    )
    assert handled == 2


@pytest.mark.parametrize("completed", [True, False])
async def test_a_settled_refund_ends_its_hold_in_the_same_statement(
    pool: asyncpg.Pool, counted: CountingPool, open_books: OpenBooks, completed: bool
) -> None:
    merchant, payment = uuid.uuid4(), payment_view(amount=3000)
    await handle_event(payment_event(payment, merchant), open_books, FEES)
    # An earlier refund (without a hold): every account of a refund's entry is known since.
    await handle_event(refund_event(payment, merchant, 500), open_books, FEES)
    refund = refund_event(payment, merchant, 1000, completed=completed)
    await pool.execute(
        "INSERT INTO refund_hold (refund_id, payment_id, merchant_id, environment, currency,"
        " amount_minor) VALUES ($1, $2, $3, $4, $5, 100000)",
        refund.refund.id,
        payment.id,
        merchant,
        payment.environment,
        payment.currency,
    )
    await counted.taken()
    await handle_event(refund, open_books, FEES)
    assert shapes(await counted.taken()) == ["WITH claimed AS"]
    status = await pool.fetchval(
        "SELECT status FROM refund_hold WHERE refund_id = $1", refund.refund.id
    )
    assert status == ("consumed" if completed else "released")
    kinds = [e["kind"] for e in await _entries(pool, payment.id)]
    assert kinds == (["payment", "refund", "refund"] if completed else ["payment", "refund"])


async def test_accounts_of_a_booking_that_rolled_back_are_not_remembered(
    pool: asyncpg.Pool, open_books: OpenBooks
) -> None:
    """The deferred balance check refuses an entry touching another merchant's balance: the
    accounts created with it are gone, and so must their ids be from the process."""
    merchant, other = uuid.uuid4(), uuid.uuid4()
    event = payment_event(payment_view(), merchant)
    fact = fact_from(event)
    assert fact is not None
    entry = book(fact, FEES)
    stolen = Chart(event.environment, fact.currency).merchant_available(other)
    postings = tuple(
        dataclasses.replace(p, account=stolen) if p.account.merchant_id == merchant else p
        for p in entry.postings
    )
    with pytest.raises(asyncpg.PostgresError, match="does not balance"):
        async with open_books() as books:
            await books.record(
                [Booking(event.message_id, dataclasses.replace(entry, postings=postings), None)],
                CONSUMER,
            )
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM inbox_message WHERE message_id = $1", event.message_id
        )
        == 0
    )
    payment = payment_view()
    assert await handle_event(payment_event(payment, other), open_books, FEES) is not None
    [booked] = await _entries(pool, payment.id)
    assert booked["total"] == 0
