"""The books in PostgreSQL: inbox claim, entry and postings in the caller's transaction.

The schema enforces what matters even against a bug here: one entry per event, payment and
refund; balanced entries (deferred constraint trigger); nothing updated or deleted.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg

from fluxpay_common import inbox
from ledger.domain.accounts import Account
from ledger.domain.books import EntryKind, JournalEntry
from ledger.domain.holds import HoldRequest, HoldStatus
from ledger.service_layer.ports import Books, Holds, OpenBooks, OpenHolds

_INSERT_ENTRY = """
INSERT INTO journal_entry (id, event_id, kind, payment_id, refund_id, merchant_id, environment,
                           currency, provider, reference, late_success, effective_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
"""
# One round trip for every leg, written in the entry's order.
_INSERT_POSTINGS = """
INSERT INTO posting (entry_id, account_id, amount_minor)
SELECT $1, t.account_id, t.amount_minor
  FROM unnest($2::bigint[], $3::bigint[]) WITH ORDINALITY AS t(account_id, amount_minor, n)
 ORDER BY t.n
"""
_SELECT_ACCOUNTS = """
SELECT id, code FROM account WHERE environment = $1 AND currency = $2 AND code = ANY($3::text[])
"""
# Sorted by code so two transactions creating the same accounts lock them in one order.
_CREATE_ACCOUNTS = """
INSERT INTO account (environment, currency, code, kind, merchant_id, provider, normal_side)
SELECT $1, $2, t.code, t.kind, t.merchant_id, t.provider, t.normal_side
  FROM unnest($3::text[], $4::text[], $5::uuid[], $6::text[], $7::text[])
       AS t(code, kind, merchant_id, provider, normal_side)
 ORDER BY t.code
ON CONFLICT (environment, currency, code) DO NOTHING
"""


_SETTLE_HOLD = """
UPDATE refund_hold SET status = $2, settled_at = now() WHERE refund_id = $1 AND status = 'held'
"""
# Booked (credit-normal: minus the sum of postings) and held, in one round trip.
_BOOKED_AND_HELD = """
SELECT (SELECT -coalesce(sum(p.amount_minor), 0)
          FROM account a JOIN posting p ON p.account_id = a.id
         WHERE a.kind = 'merchant_available' AND a.merchant_id = $1 AND a.environment = $2
           AND a.currency = $3)::bigint AS booked,
       (SELECT coalesce(sum(h.amount_minor), 0) FROM refund_hold h
         WHERE h.status = 'held' AND h.merchant_id = $1 AND h.environment = $2
           AND h.currency = $3)::bigint AS held
"""
_PLACE_HOLD = """
INSERT INTO refund_hold (refund_id, payment_id, merchant_id, environment, currency, amount_minor)
VALUES ($1, $2, $3, $4, $5, $6)
"""


class PostgresBooks(Books):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def claim(self, message_id: uuid.UUID, consumer: str) -> bool:
        return await inbox.claim(self._conn, message_id, consumer)

    async def is_booked(self, key: tuple[EntryKind, uuid.UUID]) -> bool:
        kind, booked_id = key
        column = "refund_id" if kind is EntryKind.REFUND else "payment_id"
        found = await self._conn.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM journal_entry WHERE kind = $1 AND {column} = $2)",
            kind.value,
            booked_id,
        )
        return bool(found)

    async def add(self, entry: JournalEntry) -> None:
        ids = await self._account_ids({p.account for p in entry.postings})
        await self._conn.execute(
            _INSERT_ENTRY,
            entry.id,
            entry.event_id,
            entry.kind.value,
            entry.payment_id,
            entry.refund_id,
            entry.merchant_id,
            entry.environment,
            entry.currency,
            entry.provider,
            entry.reference,
            entry.late_success,
            entry.effective_at,
        )
        await self._conn.execute(
            _INSERT_POSTINGS,
            entry.id,
            [ids[p.account] for p in entry.postings],
            [p.amount_minor for p in entry.postings],
        )

    async def settle_hold(self, refund_id: uuid.UUID, outcome: HoldStatus) -> None:
        await self._conn.execute(_SETTLE_HOLD, refund_id, outcome.value)

    async def _account_ids(self, accounts: set[Account]) -> dict[Account, int]:
        """Each account's id, creating on first use the ones that do not exist yet."""
        ids = await self._lookup(accounts)
        if missing := accounts - ids.keys():
            await self._create(missing)
            ids |= await self._lookup(missing)
        return ids

    async def _lookup(self, accounts: set[Account]) -> dict[Account, int]:
        ids: dict[Account, int] = {}
        for (environment, currency), group in _by_books(accounts).items():
            by_code = {account.code: account for account in group}
            rows = await self._conn.fetch(_SELECT_ACCOUNTS, environment, currency, list(by_code))
            ids |= {by_code[row["code"]]: row["id"] for row in rows}
        return ids

    async def _create(self, accounts: set[Account]) -> None:
        for (environment, currency), group in _by_books(accounts).items():
            await self._conn.execute(
                _CREATE_ACCOUNTS,
                environment,
                currency,
                [a.code for a in group],
                [a.kind.value for a in group],
                [a.merchant_id for a in group],
                [a.provider for a in group],
                ["credit" if a.is_credit_normal else "debit" for a in group],
            )


def _by_books(accounts: Iterable[Account]) -> dict[tuple[str, str], list[Account]]:
    groups: dict[tuple[str, str], list[Account]] = {}
    for account in accounts:
        groups.setdefault((account.environment, account.currency), []).append(account)
    return groups


class PostgresHolds(Holds):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def lock_balance(self, key: tuple[uuid.UUID, str, str]) -> None:
        merchant_id, environment, currency = key
        await self._conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"refund_hold:{merchant_id}:{environment}:{currency}",
        )

    async def find(self, refund_id: uuid.UUID) -> HoldStatus | None:
        status = await self._conn.fetchval(
            "SELECT status FROM refund_hold WHERE refund_id = $1", refund_id
        )
        return None if status is None else HoldStatus(status)

    async def booked_and_held(self, key: tuple[uuid.UUID, str, str]) -> tuple[int, int]:
        row = await self._conn.fetchrow(_BOOKED_AND_HELD, *key)
        assert row is not None
        return int(row["booked"]), int(row["held"])

    async def place(self, request: HoldRequest) -> None:
        await self._conn.execute(
            _PLACE_HOLD,
            request.refund_id,
            request.payment_id,
            request.merchant_id,
            request.environment,
            request.currency,
            request.amount_minor,
        )

    async def settle(self, refund_id: uuid.UUID, outcome: HoldStatus) -> None:
        await self._conn.execute(_SETTLE_HOLD, refund_id, outcome.value)


def postgres_holds(pool: asyncpg.Pool) -> OpenHolds:
    """An `OpenHolds` over the pool: each call is one connection and one transaction."""

    @asynccontextmanager
    async def open_holds() -> AsyncIterator[Holds]:
        async with pool.acquire() as conn, conn.transaction():
            yield PostgresHolds(conn)

    return open_holds


def postgres_books(pool: asyncpg.Pool) -> OpenBooks:
    """An `OpenBooks` over the pool: each call is one connection and one transaction."""

    def open_books() -> AbstractAsyncContextManager[Books]:
        return _transaction(pool)

    return open_books


@asynccontextmanager
async def _transaction(pool: asyncpg.Pool) -> AsyncIterator[Books]:
    async with pool.acquire() as conn, conn.transaction():
        yield PostgresBooks(conn)
