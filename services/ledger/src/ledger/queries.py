"""Read-side queries over the books: the gateway's merchant reads and the admin CLI.

Each takes a connection whose search_path is the `ledger` schema (a pool from
`fluxpay_common.db.create_pool(dsn, "ledger")`), reads only, and returns plain values:

- `balances(conn, merchant_id, environment)`: {currency: available_minor}, net of refund holds;
- `transactions(conn, merchant_id, environment, limit, starting_after)`: the merchant's
  entries newest first, each with its payment, gross, fee and net, paginated by entry id;
- `reconcile(conn, day, provider, environment, merchant_id)`: the day's movements as booked,
  their totals and the books' own consistency checks; `movements_of(conn, keys)`: the booked
  movements of given payments and refunds, whatever their day.
  `service_layer.reconciliation` matches them against the orchestrator's day.

Balances are sums of postings (the schema stores no running balance).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

from ledger.adapters.consistency import consistency_problems
from ledger.domain.books import EntryKind
from ledger.domain.reconciliation import BookedMovement, MovementKey, split_keys

MAX_PAGE = 100


class UnknownCursor(LookupError):
    """`starting_after` names no entry of this merchant and environment."""


async def balances(
    conn: asyncpg.Connection, merchant_id: uuid.UUID, environment: str
) -> dict[str, int]:
    """What the merchant can spend, per currency: what the platform owes it (credit-normal:
    minus the sum of postings) less the refunds held on it and not yet booked."""
    rows = await conn.fetch(
        "SELECT a.currency, -coalesce(sum(p.amount_minor), 0) - (SELECT coalesce("
        "sum(h.amount_minor), 0) FROM refund_hold h WHERE h.status = 'held'"
        " AND h.merchant_id = $1 AND h.environment = $2 AND h.currency = a.currency)"
        " AS available_minor"
        " FROM account a LEFT JOIN posting p ON p.account_id = a.id"
        " WHERE a.kind = 'merchant_available' AND a.merchant_id = $1 AND a.environment = $2"
        " GROUP BY a.currency ORDER BY a.currency",
        merchant_id,
        environment,
    )
    return {row["currency"]: int(row["available_minor"]) for row in rows}


@dataclass(frozen=True)
class BalanceTransaction:
    """One journal entry as the merchant sees it: gross, platform fee and net effect."""

    id: uuid.UUID
    kind: str
    payment_id: uuid.UUID
    refund_id: uuid.UUID | None
    reference: str
    currency: str
    # Signed for the merchant: a payment is positive, a refund negative.
    amount_minor: int
    fee_minor: int
    net_minor: int
    late_success: bool
    effective_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class TransactionPage:
    data: list[BalanceTransaction]
    has_more: bool


_PAGE = """
WITH page AS (
    SELECT e.* FROM journal_entry e
     WHERE e.merchant_id = $1 AND e.environment = $2
       AND ($3::timestamptz IS NULL OR (e.created_at, e.id) < ($3::timestamptz, $4::uuid))
     ORDER BY e.created_at DESC, e.id DESC
     LIMIT $5
)
SELECT page.id, page.kind, page.payment_id, page.refund_id, page.reference, page.currency,
       page.late_success, page.effective_at, page.created_at,
       -coalesce(sum(p.amount_minor) FILTER (WHERE a.kind = 'merchant_available'), 0) AS net,
       -coalesce(sum(p.amount_minor) FILTER (WHERE a.kind = 'platform_fee_revenue'), 0) AS fee
  FROM page
  JOIN posting p ON p.entry_id = page.id
  JOIN account a ON a.id = p.account_id
 GROUP BY page.id, page.kind, page.payment_id, page.refund_id, page.reference, page.currency,
          page.late_success, page.effective_at, page.created_at
 ORDER BY page.created_at DESC, page.id DESC
"""


async def transactions(
    conn: asyncpg.Connection,
    merchant_id: uuid.UUID,
    environment: str,
    limit: int = 20,
    starting_after: uuid.UUID | None = None,
) -> TransactionPage:
    """The merchant's entries, newest first; pass the last id seen as `starting_after`."""
    limit = max(1, min(limit, MAX_PAGE))
    cursor_at: datetime | None = None
    if starting_after is not None:
        cursor_at = await conn.fetchval(
            "SELECT created_at FROM journal_entry"
            " WHERE id = $1 AND merchant_id = $2 AND environment = $3",
            starting_after,
            merchant_id,
            environment,
        )
        if cursor_at is None:
            raise UnknownCursor(f"no transaction {starting_after}")
    rows = await conn.fetch(_PAGE, merchant_id, environment, cursor_at, starting_after, limit + 1)
    return TransactionPage([_transaction(r) for r in rows[:limit]], has_more=len(rows) > limit)


def _transaction(row: asyncpg.Record) -> BalanceTransaction:
    net, fee = int(row["net"]), int(row["fee"])
    return BalanceTransaction(
        id=row["id"],
        kind=row["kind"],
        payment_id=row["payment_id"],
        refund_id=row["refund_id"],
        reference=row["reference"],
        currency=row["currency"],
        amount_minor=net + fee,
        fee_minor=fee,
        net_minor=net,
        late_success=row["late_success"],
        effective_at=row["effective_at"],
        created_at=row["created_at"],
    )


@dataclass(frozen=True)
class Total:
    environment: str
    currency: str
    provider: str
    kind: str
    count: int
    amount_minor: int
    platform_fee_minor: int
    psp_fee_minor: int


@dataclass(frozen=True)
class Reconciliation:
    day: date
    provider: str | None
    environment: str | None
    movements: list[BookedMovement]
    totals: list[Total]
    # The books' own checks; none expected (the schema prevents most of them).
    problems: list[str] = field(default_factory=list)
    merchant_id: uuid.UUID | None = None


_MOVEMENT = """
SELECT e.id, e.kind, e.payment_id, e.refund_id, e.environment, e.currency, e.provider,
       e.late_success, e.effective_at,
       coalesce(sum(p.amount_minor) FILTER (WHERE a.kind = 'merchant_available'), 0) AS merchant,
       -coalesce(sum(p.amount_minor) FILTER (WHERE a.kind = 'platform_fee_revenue'), 0) AS fee,
       coalesce(sum(p.amount_minor) FILTER (WHERE a.kind = 'psp_fee_expense'), 0) AS psp_fee
  FROM journal_entry e
  JOIN posting p ON p.entry_id = e.id
  JOIN account a ON a.id = p.account_id
"""

_DAY_MOVEMENTS = (
    _MOVEMENT
    + """
 WHERE e.effective_at >= $1 AND e.effective_at < $2
   AND ($3::text IS NULL OR e.provider = $3)
   AND ($4::text IS NULL OR e.environment = $4)
   AND ($5::uuid IS NULL OR e.merchant_id = $5)
 GROUP BY e.id
 ORDER BY e.effective_at, e.id
"""
)

# The partial unique indexes (one entry per payment, per refund) serve both branches.
_MOVEMENTS_BY_KEY = (
    _MOVEMENT
    + """
 WHERE (e.kind = 'payment' AND e.payment_id = ANY($1::uuid[]))
    OR (e.kind = 'refund' AND e.refund_id = ANY($2::uuid[]))
 GROUP BY e.id
 ORDER BY e.effective_at, e.id
"""
)


async def reconcile(
    conn: asyncpg.Connection,
    day: date,
    provider: str | None = None,
    environment: str | None = None,
    merchant_id: uuid.UUID | None = None,
) -> Reconciliation:
    """The day's (UTC, by when the money moved) booked movements, totals and problems."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    end = start + timedelta(days=1)
    rows = await conn.fetch(_DAY_MOVEMENTS, start, end, provider, environment, merchant_id)
    movements = [_movement(row) for row in rows]
    refunds = [m for m in movements if m.kind is EntryKind.REFUND]
    problems = await consistency_problems(conn, start, provider, environment, refunds)
    totals = _totals(movements)
    return Reconciliation(
        day, provider, environment, movements, totals, problems, merchant_id=merchant_id
    )


async def movements_of(
    conn: asyncpg.Connection, keys: Iterable[MovementKey]
) -> list[BookedMovement]:
    """The booked movements of these payments and refunds, whatever day they are filed under."""
    payments, refunds = split_keys(keys)
    if not payments and not refunds:
        return []
    rows = await conn.fetch(_MOVEMENTS_BY_KEY, payments, refunds)
    return [_movement(row) for row in rows]


def _movement(row: asyncpg.Record) -> BookedMovement:
    kind = EntryKind(row["kind"])
    merchant, fee = int(row["merchant"]), int(row["fee"])
    # A payment credits the merchant its net; a refund debits it the whole amount.
    gross = -merchant + fee if kind is EntryKind.PAYMENT else merchant
    return BookedMovement(
        kind=kind,
        payment_id=row["payment_id"],
        refund_id=row["refund_id"],
        environment=row["environment"],
        currency=row["currency"],
        amount_minor=gross,
        entry_id=row["id"],
        provider=row["provider"],
        platform_fee_minor=fee,
        psp_fee_minor=int(row["psp_fee"]),
        late_success=row["late_success"],
        effective_at=row["effective_at"],
    )


def _totals(movements: Sequence[BookedMovement]) -> list[Total]:
    sums: dict[tuple[str, str, str, str], list[int]] = {}
    for m in movements:
        key = (m.environment, m.currency, m.provider, m.kind.value)
        acc = sums.setdefault(key, [0, 0, 0, 0])
        acc[0] += 1
        acc[1] += m.amount_minor
        acc[2] += m.platform_fee_minor
        acc[3] += m.psp_fee_minor or 0
    return [Total(*key, *values) for key, values in sorted(sums.items())]
