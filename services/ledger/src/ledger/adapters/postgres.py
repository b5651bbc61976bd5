"""The books in PostgreSQL: a batch of events' inbox claims, the refund holds they end, their
entries and postings in one statement (atomic without BEGIN/COMMIT) once their accounts' ids
are known.

Accounts are immutable rows (the schema refuses UPDATE and DELETE), so their ids are kept in
process once committed: the common booking reads nothing first. An account seen for the
first time is looked up (and created) in a transaction with the batch's booking.

The schema enforces what matters even against a bug here: one entry per event, payment and
refund; balanced entries (deferred constraint trigger); nothing updated or deleted.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg

from ledger.domain.accounts import Account
from ledger.domain.books import JournalEntry
from ledger.domain.holds import HoldRequest, HoldStatus
from ledger.service_layer.ports import Booking, Books, Holds, OpenBooks, OpenHolds, Recorded

# A batch of events in one statement, atomic without BEGIN/COMMIT. In lock order: the inbox
# claims (by message id; a message claimed by another transaction waits for it, then counts
# as handled), complete before anything else is written (`ids`, an InitPlan); the entries of
# the messages claimed now, by payment or refund (ON CONFLICT, on any of the entry's unique
# indexes: its event, its payment, its refund, leaves a payment or refund booked once; in a
# batch, by the first of its events in delivery order); their postings, in the entry's
# order; the refund holds they end, by refund id (the first claimed event of a refund decides).
_RECORD = """
WITH claimed AS (
    INSERT INTO inbox_message (message_id, consumer)
    SELECT m.id, $1 FROM unnest($2::uuid[]) AS m(id) ORDER BY m.id
    ON CONFLICT (message_id) DO NOTHING RETURNING message_id
),
claimed_ids AS (SELECT coalesce(array_agg(message_id), '{}') AS ids FROM claimed),
entry AS (
    INSERT INTO journal_entry (id, event_id, kind, payment_id, refund_id, merchant_id,
                               environment, currency, provider, reference, late_success,
                               effective_at)
    SELECT t.id, t.event_id, t.kind, t.payment_id, t.refund_id, t.merchant_id, t.environment,
           t.currency, t.provider, t.reference, t.late_success, t.effective_at
      FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::uuid[], $7::uuid[], $8::uuid[],
                  $9::text[], $10::text[], $11::text[], $12::text[], $13::boolean[],
                  $14::timestamptz[]) WITH ORDINALITY
           AS t(id, event_id, kind, payment_id, refund_id, merchant_id, environment, currency,
                provider, reference, late_success, effective_at, n)
     WHERE t.event_id = ANY ((SELECT ids FROM claimed_ids)::uuid[])
     ORDER BY t.kind, coalesce(t.refund_id, t.payment_id), t.n
    ON CONFLICT DO NOTHING RETURNING id, event_id
),
legs AS (
    INSERT INTO posting (entry_id, account_id, amount_minor)
    SELECT t.entry_id, t.account_id, t.amount_minor
      FROM unnest($15::uuid[], $16::bigint[], $17::bigint[]) WITH ORDINALITY
           AS t(entry_id, account_id, amount_minor, n)
      JOIN entry ON entry.id = t.entry_id
     ORDER BY t.n
),
settled AS (
    UPDATE refund_hold h SET status = s.status, settled_at = now()
      FROM (SELECT DISTINCT ON (t.refund_id) t.refund_id, t.status
              FROM unnest($18::uuid[], $19::uuid[], $20::text[]) WITH ORDINALITY
                   AS t(message_id, refund_id, status, n)
             WHERE t.message_id = ANY ((SELECT ids FROM claimed_ids)::uuid[])
             ORDER BY t.refund_id, t.n) AS s
     WHERE h.refund_id = s.refund_id AND h.status = 'held'
)
SELECT (SELECT ids FROM claimed_ids) AS claimed,
       (SELECT coalesce(array_agg(event_id), '{}') FROM entry) AS booked
"""
# Account ids kept in process: accounts are never updated or deleted. Bounded all the same.
ACCOUNT_CACHE_LIMIT = 100_000
AccountKey = tuple[str, str, str]
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
    def __init__(self, conn: asyncpg.Connection, account_ids: dict[AccountKey, int]) -> None:
        self._conn = conn
        self._known = account_ids

    async def record(self, bookings: Sequence[Booking], consumer: str) -> list[Recorded]:
        accounts = {p.account for b in bookings if b.entry for p in b.entry.postings}
        ids = {a: self._known[_key(a)] for a in accounts if _key(a) in self._known}
        if len(ids) == len(accounts):
            return await self._record(bookings, consumer, ids)
        async with self._conn.transaction():
            ids = await self._account_ids(accounts)
            recorded = await self._record(bookings, consumer, ids)
        # Only now: ids of accounts created by a transaction that rolled back do not exist.
        if len(self._known) + len(ids) > ACCOUNT_CACHE_LIMIT:
            self._known.clear()
        self._known.update({_key(a): i for a, i in ids.items()})
        return recorded

    async def _record(
        self, bookings: Sequence[Booking], consumer: str, ids: dict[Account, int]
    ) -> list[Recorded]:
        entries = [b.entry for b in bookings if b.entry is not None]
        postings = [(e.id, p) for e in entries for p in e.postings]
        holds = [(b.message_id, b.hold) for b in bookings if b.hold is not None]
        row = await self._conn.fetchrow(
            _RECORD,
            consumer,
            [b.message_id for b in bookings],
            *_entry_columns(entries),
            [entry_id for entry_id, _ in postings],
            [ids[p.account] for _, p in postings],
            [p.amount_minor for _, p in postings],
            [message_id for message_id, _ in holds],
            [refund_id for _, (refund_id, _) in holds],
            [outcome.value for _, (_, outcome) in holds],
        )
        assert row is not None
        claimed, booked = set(row["claimed"]), set(row["booked"])
        return [_recorded(b, claimed, booked) for b in bookings]

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


def _key(account: Account) -> AccountKey:
    return (account.environment, account.currency, account.code)


def _recorded(booking: Booking, claimed: set[uuid.UUID], booked: set[uuid.UUID]) -> Recorded:
    if booking.message_id not in claimed:
        return Recorded.HANDLED_BEFORE
    if booking.entry is None:
        return Recorded.NOTHING_TO_BOOK
    return Recorded.BOOKED if booking.entry.event_id in booked else Recorded.ALREADY_BOOKED


def _entry_columns(entries: Sequence[JournalEntry]) -> list[list[object]]:
    """The entries as the statement's twelve arrays, one per journal_entry column."""
    return [
        [e.id for e in entries],
        [e.event_id for e in entries],
        [e.kind.value for e in entries],
        [e.payment_id for e in entries],
        [e.refund_id for e in entries],
        [e.merchant_id for e in entries],
        [e.environment for e in entries],
        [e.currency for e in entries],
        [e.provider for e in entries],
        [e.reference for e in entries],
        [e.late_success for e in entries],
        [e.effective_at for e in entries],
    ]


def _by_books(accounts: Iterable[Account]) -> dict[tuple[str, str], list[Account]]:
    """By environment and currency, in that order (accounts are created in one order)."""
    groups: dict[tuple[str, str], list[Account]] = {}
    for account in sorted(accounts, key=_key):
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
    """An `OpenBooks` over the pool: each call is one connection; the account ids found are
    kept for every later call (accounts never change)."""
    account_ids: dict[AccountKey, int] = {}

    def open_books() -> AbstractAsyncContextManager[Books]:
        return _books(pool, account_ids)

    return open_books


@asynccontextmanager
async def _books(pool: asyncpg.Pool, account_ids: dict[AccountKey, int]) -> AsyncIterator[Books]:
    async with pool.acquire() as conn:
        yield PostgresBooks(conn, account_ids)
