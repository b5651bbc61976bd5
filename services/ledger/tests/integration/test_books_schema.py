"""What the database itself refuses, whatever the code above it does."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from fluxpay_testing.infra import Infra
from fluxpay_testing.ledger import NOW, payment_event, payment_view

from fluxpay_common.db import create_pool, migrate
from ledger.adapters.postgres import postgres_books
from ledger.domain.fees import FeeSchedule
from ledger.entrypoints.main import SCHEMA, migrations
from ledger.service_layer.handlers import handle_event

FEES = FeeSchedule()


@pytest.fixture(scope="module")
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(infra.database_url, SCHEMA, max_size=25)
    await migrate(pool, SCHEMA, migrations())
    yield pool
    await pool.close()


async def _account(conn: asyncpg.Connection, code: str, currency: str = "XOF") -> int:
    kind, _, qualifier = code.partition(":")
    merchant = uuid.UUID(qualifier) if kind == "merchant_available" else None
    provider = qualifier if kind == "psp_clearing" else None
    side = "credit" if kind in ("merchant_available", "platform_fee_revenue") else "debit"
    await conn.execute(
        "INSERT INTO account (environment, currency, code, kind, merchant_id, provider,"
        " normal_side) VALUES ('live', $1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (environment, currency, code) DO NOTHING",
        currency,
        code,
        kind,
        merchant,
        provider,
        side,
    )
    account_id: int = await conn.fetchval(
        "SELECT id FROM account WHERE environment = 'live' AND currency = $1 AND code = $2",
        currency,
        code,
    )
    return account_id


async def _write_entry(
    pool: asyncpg.Pool, merchant: uuid.UUID, legs: list[tuple[int, int]]
) -> uuid.UUID:
    """An entry written by hand, bypassing the domain's checks."""
    entry_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO journal_entry (id, event_id, kind, payment_id, merchant_id, environment,"
            " currency, provider, reference, effective_at)"
            " VALUES ($1, $2, 'payment', $3, $4, 'live', 'XOF', 'sandbox', 'ref', $5)",
            entry_id,
            uuid.uuid4(),
            uuid.uuid4(),
            merchant,
            NOW,
        )
        for account_id, amount in legs:
            await conn.execute(
                "INSERT INTO posting (entry_id, account_id, amount_minor) VALUES ($1, $2, $3)",
                entry_id,
                account_id,
                amount,
            )
    return entry_id


async def _accounts(pool: asyncpg.Pool, merchant: uuid.UUID) -> dict[str, int]:
    async with pool.acquire() as conn:
        return {
            "clearing": await _account(conn, "psp_clearing:sandbox"),
            "merchant": await _account(conn, f"merchant_available:{merchant}"),
            "fee": await _account(conn, "platform_fee_revenue"),
            "rwf": await _account(conn, "platform_fee_revenue", currency="RWF"),
        }


async def test_a_balanced_entry_written_by_hand_is_accepted(pool: asyncpg.Pool) -> None:
    merchant = uuid.uuid4()
    a = await _accounts(pool, merchant)
    entry_id = await _write_entry(
        pool, merchant, [(a["clearing"], 1000), (a["merchant"], -985), (a["fee"], -15)]
    )
    assert await pool.fetchval("SELECT count(*) FROM posting WHERE entry_id = $1", entry_id) == 3


@pytest.mark.parametrize(
    "legs",
    [
        [("clearing", 1000), ("merchant", -999)],  # does not sum to zero
        [("clearing", 1000)],  # one leg
        [],  # no leg at all
        [("clearing", 1000), ("rwf", -1000)],  # two currencies
    ],
    ids=["unbalanced", "single-leg", "no-leg", "cross-currency"],
)
async def test_an_entry_that_does_not_balance_is_refused_at_commit(
    pool: asyncpg.Pool, legs: list[tuple[str, int]]
) -> None:
    merchant = uuid.uuid4()
    a = await _accounts(pool, merchant)
    with pytest.raises(asyncpg.CheckViolationError, match="does not balance"):
        await _write_entry(pool, merchant, [(a[name], amount) for name, amount in legs])
    assert (
        await pool.fetchval("SELECT count(*) FROM journal_entry WHERE merchant_id = $1", merchant)
        == 0
    )


async def test_an_entry_cannot_credit_another_merchant(pool: asyncpg.Pool) -> None:
    merchant, other = uuid.uuid4(), uuid.uuid4()
    a = await _accounts(pool, other)
    with pytest.raises(asyncpg.CheckViolationError):
        await _write_entry(pool, merchant, [(a["clearing"], 500), (a["merchant"], -500)])


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE posting SET amount_minor = 1 WHERE entry_id = $1",
        "DELETE FROM posting WHERE entry_id = $1",
        "UPDATE journal_entry SET provider = 'other' WHERE id = $1",
        "DELETE FROM journal_entry WHERE id = $1",
        "UPDATE account SET currency = 'EUR' WHERE id IN"
        " (SELECT account_id FROM posting WHERE entry_id = $1)",
    ],
)
async def test_the_books_are_append_only(pool: asyncpg.Pool, statement: str) -> None:
    merchant = uuid.uuid4()
    a = await _accounts(pool, merchant)
    entry_id = await _write_entry(pool, merchant, [(a["clearing"], 700), (a["merchant"], -700)])
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await pool.execute(statement, entry_id)


async def test_the_books_cannot_be_truncated(pool: asyncpg.Pool) -> None:
    with pytest.raises(asyncpg.RestrictViolationError):
        await pool.execute("TRUNCATE posting, journal_entry, account")


async def test_two_events_completing_one_payment_at_once_book_it_once(pool: asyncpg.Pool) -> None:
    merchant, payment = uuid.uuid4(), payment_view()
    first, second = (payment_event(payment, merchant) for _ in range(2))
    books = postgres_books(pool)
    outcomes = await asyncio.gather(
        handle_event(first, books, FEES), handle_event(second, books, FEES), return_exceptions=True
    )
    # The loser either saw the winner's entry or hit the unique index (and is redelivered).
    for outcome, event in zip(outcomes, (first, second), strict=True):
        if isinstance(outcome, asyncpg.UniqueViolationError):
            assert await handle_event(event, books, FEES) is None
    count = await pool.fetchval(
        "SELECT count(*) FROM journal_entry WHERE payment_id = $1", payment.id
    )
    assert count == 1


async def test_concurrent_payments_create_a_new_merchants_accounts_once(pool: asyncpg.Pool) -> None:
    merchant, books = uuid.uuid4(), postgres_books(pool)
    events = [
        payment_event(payment_view(amount=1000, currency="GHS", environment="live"), merchant)
        for _ in range(20)
    ]
    entries = await asyncio.gather(*(handle_event(e, books, FEES) for e in events))
    assert all(entry is not None for entry in entries)
    accounts = await pool.fetch(
        "SELECT code FROM account WHERE environment = 'live' AND currency = 'GHS' AND code = $1",
        f"merchant_available:{merchant}",
    )
    assert len(accounts) == 1
