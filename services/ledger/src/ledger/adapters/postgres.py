"""The books in PostgreSQL: an event's inbox claim, its refund hold's end, its entry and
postings in one statement (atomic without BEGIN/COMMIT) once its accounts' ids are known.

Accounts are immutable rows (the schema refuses UPDATE and DELETE), so their ids are kept in
process once committed: the common booking reads nothing first. An account seen for the
first time is looked up (and created) in a transaction with the booking.

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
from ledger.domain.books import JournalEntry
from ledger.domain.holds import HoldRequest, HoldStatus
from ledger.service_layer.ports import Books, Holds, OpenBooks, OpenHolds, Recorded

# Written only for a message claimed now; ON CONFLICT (any of the entry's unique indexes:
# its event, its payment, its refund) leaves a payment or refund booked once.
_ENTRY_CTE = """
entry AS (
    INSERT INTO journal_entry (id, event_id, kind, payment_id, refund_id, merchant_id,
                               environment, currency, provider, reference, late_success,
                               effective_at)
    SELECT {params} WHERE EXISTS (SELECT 1 FROM claimed)
    ON CONFLICT DO NOTHING RETURNING id
)"""
# Every leg, in the entry's order, for the entry written (none if it was not).
_POSTINGS_CTE = """
legs AS (
    INSERT INTO posting (entry_id, account_id, amount_minor)
    SELECT entry.id, t.account_id, t.amount_minor
      FROM entry, unnest(${ids}::bigint[], ${amounts}::bigint[]) WITH ORDINALITY
           AS t(account_id, amount_minor, n)
     ORDER BY t.n
)"""
_SETTLE_HOLD_CTE = """
settled AS (
    UPDATE refund_hold SET status = ${status}, settled_at = now()
     WHERE refund_id = ${refund} AND status = 'held' AND EXISTS (SELECT 1 FROM claimed)
)"""
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

    async def record(
        self,
        message_id: uuid.UUID,
        consumer: str,
        *,
        entry: JournalEntry | None,
        hold: tuple[uuid.UUID, HoldStatus] | None,
    ) -> Recorded:
        accounts = set() if entry is None else {p.account for p in entry.postings}
        ids = {a: self._known[_key(a)] for a in accounts if _key(a) in self._known}
        if len(ids) == len(accounts):
            return await self._record(message_id, consumer, entry, ids, hold)
        async with self._conn.transaction():
            ids = await self._account_ids(accounts)
            recorded = await self._record(message_id, consumer, entry, ids, hold)
        # Only now: ids of accounts created by a transaction that rolled back do not exist.
        if len(self._known) + len(ids) > ACCOUNT_CACHE_LIMIT:
            self._known.clear()
        self._known.update({_key(a): i for a, i in ids.items()})
        return recorded

    async def _record(
        self,
        message_id: uuid.UUID,
        consumer: str,
        entry: JournalEntry | None,
        ids: dict[Account, int],
        hold: tuple[uuid.UUID, HoldStatus] | None,
    ) -> Recorded:
        args: list[object] = [message_id, consumer]
        ctes = [inbox.claim_cte(1, 2)]
        if hold is not None:
            ctes.append(_SETTLE_HOLD_CTE.format(refund=len(args) + 1, status=len(args) + 2))
            args += [hold[0], hold[1].value]
        booked = "false"
        if entry is not None:
            values = _entry_values(entry)
            params = ", ".join(f"${len(args) + i}" for i in range(1, len(values) + 1))
            ctes.append(_ENTRY_CTE.format(params=params))
            args += values
            ctes.append(_POSTINGS_CTE.format(ids=len(args) + 1, amounts=len(args) + 2))
            args += [
                [ids[p.account] for p in entry.postings],
                [p.amount_minor for p in entry.postings],
            ]
            booked = "EXISTS (SELECT 1 FROM entry)"
        row = await self._conn.fetchrow(
            f"WITH {', '.join(ctes)}"
            f" SELECT EXISTS (SELECT 1 FROM claimed) AS claimed, {booked} AS booked",
            *args,
        )
        assert row is not None
        if not row["claimed"]:
            return Recorded.HANDLED_BEFORE
        if entry is None:
            return Recorded.NOTHING_TO_BOOK
        return Recorded.BOOKED if row["booked"] else Recorded.ALREADY_BOOKED

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


def _entry_values(entry: JournalEntry) -> list[object]:
    return [
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
    ]


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
