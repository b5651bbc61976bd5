"""The orchestrator's view of a day, read from its schema: what the books should hold.

Read-only, for reconciliation only: the ledger never writes there and its worker never reads
there. The orchestrator stores amounts in major units (the minor amount is amount * 100) and
stamps `completed_at` when money moved: a payment's completion, a refund's settlement.
A payment that was later refunded in full (status `refunded`) was still collected that day.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from fluxpay_common.money import to_minor
from ledger.domain.books import EntryKind
from ledger.domain.reconciliation import Movement, MovementKey, split_keys

COLLECTED = ("completed", "refunded")

_PAYMENTS = """
SELECT id, environment, currency, amount, fee_minor
  FROM orchestrator.payment
 WHERE status = ANY($3::text[]) AND completed_at >= $1 AND completed_at < $2
   AND ($4::text IS NULL OR provider = $4)
   AND ($5::text IS NULL OR environment = $5)
   AND ($6::uuid IS NULL OR merchant_id = $6)
"""

_REFUNDS = """
SELECT r.id, r.payment_id, r.environment, r.currency, r.amount
  FROM orchestrator.refund r
  JOIN orchestrator.payment p ON p.id = r.payment_id
 WHERE r.status = 'completed' AND r.completed_at >= $1 AND r.completed_at < $2
   AND ($3::text IS NULL OR p.provider = $3)
   AND ($4::text IS NULL OR r.environment = $4)
   AND ($5::uuid IS NULL OR r.merchant_id = $5)
"""

_COMPLETED_AT = """
SELECT 'payment' AS kind, id, completed_at FROM orchestrator.payment
 WHERE id = ANY($1::uuid[]) AND status = ANY($3::text[]) AND completed_at IS NOT NULL
UNION ALL
SELECT 'refund', id, completed_at FROM orchestrator.refund
 WHERE id = ANY($2::uuid[]) AND status = 'completed' AND completed_at IS NOT NULL
"""


@dataclass(frozen=True)
class DayFilter:
    """A UTC day [start, end) and the optional provider, environment and merchant."""

    start: datetime
    end: datetime
    provider: str | None = None
    environment: str | None = None
    merchant_id: uuid.UUID | None = None


async def expected_movements(conn: asyncpg.Connection, day: DayFilter) -> list[Movement]:
    """The payments collected and the refunds paid out that day, per the orchestrator."""
    scope = (day.provider, day.environment, day.merchant_id)
    payments = await conn.fetch(_PAYMENTS, day.start, day.end, list(COLLECTED), *scope)
    refunds = await conn.fetch(_REFUNDS, day.start, day.end, *scope)
    return [*map(_payment, payments), *map(_refund, refunds)]


async def completed_at(
    conn: asyncpg.Connection, keys: Iterable[MovementKey]
) -> dict[MovementKey, datetime]:
    """When the orchestrator says these payments and refunds moved money (if they did)."""
    payments, refunds = split_keys(keys)
    if not payments and not refunds:
        return {}
    rows = await conn.fetch(_COMPLETED_AT, payments, refunds, list(COLLECTED))
    return {(EntryKind(r["kind"]), r["id"]): r["completed_at"] for r in rows}


def _payment(row: asyncpg.Record) -> Movement:
    return Movement(
        kind=EntryKind.PAYMENT,
        payment_id=row["id"],
        refund_id=None,
        environment=row["environment"],
        currency=row["currency"],
        amount_minor=to_minor(int(row["amount"])),
        # No fee reported by the PSP: the books hold no PSP fee either.
        psp_fee_minor=int(row["fee_minor"] or 0),
    )


def _refund(row: asyncpg.Record) -> Movement:
    return Movement(
        kind=EntryKind.REFUND,
        payment_id=row["payment_id"],
        refund_id=row["id"],
        environment=row["environment"],
        currency=row["currency"],
        amount_minor=to_minor(int(row["amount"])),
    )
