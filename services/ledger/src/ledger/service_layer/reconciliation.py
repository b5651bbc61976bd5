"""Reconcile a day: the orchestrator's completed payments and refunds against the books.

The orchestrator's side comes through its door (`ports.OrchestratorDay`, request/reply),
asked first; the books are then read in one read-only, repeatable-read transaction. An
entry booked after the orchestrator answered names a movement the first answer may not
have held: such strays are asked about again, and those the orchestrator completed in the
window join the expected side, so an event booked between the two reads is never a
difference. The orchestrator files a movement under the day its `completed_at` falls on;
the books file it under their entry's `effective_at`. For a payment both are the same
instant; a refund's entry is stamped when its event was written, a few milliseconds apart,
so at midnight the two may name neighbouring days. The orchestrator's day decides: its
movements are matched with their entries wherever the books filed them, and an entry of
this day whose movement the orchestrator completed on another day is left to that day's run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

from ledger import queries
from ledger.domain.books import EntryKind
from ledger.domain.reconciliation import (
    BookedMovement,
    DayFilter,
    Difference,
    Movement,
    MovementKey,
    day_differences,
)
from ledger.queries import Total
from ledger.service_layer.ports import OrchestratorDay


@dataclass(frozen=True)
class DayReport:
    day: date
    provider: str | None
    environment: str | None
    merchant_id: uuid.UUID | None
    payments_checked: int
    refunds_checked: int
    # Between the orchestrator and the books; none expected.
    differences: list[Difference]
    # The books' own consistency checks; none expected.
    problems: list[str]
    # The books' movements filed under the day, summed per environment/currency/provider/kind.
    totals: list[Total]

    @property
    def clean(self) -> bool:
        return not self.differences and not self.problems


def day_filter(
    day: date,
    provider: str | None = None,
    environment: str | None = None,
    merchant_id: uuid.UUID | None = None,
) -> DayFilter:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return DayFilter(start, start + timedelta(days=1), provider, environment, merchant_id)


async def reconcile_day(
    conn: asyncpg.Connection,
    orchestrator: OrchestratorDay,
    day: date,
    provider: str | None = None,
    environment: str | None = None,
    merchant_id: uuid.UUID | None = None,
) -> DayReport:
    """Every difference between the orchestrator and the books for a UTC day."""
    window = day_filter(day, provider, environment, merchant_id)
    expected = await orchestrator.expected_movements(window)
    keys = {m.key for m in expected}
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        books = await queries.reconcile(conn, day, provider, environment, merchant_id)
        wherever_filed = await queries.movements_of(conn, keys)
    strays = [m.key for m in books.movements if m.key not in keys]
    settled = await orchestrator.settled(strays)
    late = [m for m, at in settled.values() if window.start <= at < window.end]
    expected, keys = [*expected, *late], keys | {m.key for m in late}
    elsewhere = {k for k, (_, at) in settled.items() if not window.start <= at < window.end}
    booked = _unique([*books.movements, *wherever_filed])
    checked = keys | {m.key for m in booked if m.key not in elsewhere}
    return DayReport(
        day=day,
        provider=provider,
        environment=environment,
        merchant_id=merchant_id,
        payments_checked=_count(checked, EntryKind.PAYMENT),
        refunds_checked=_count(checked, EntryKind.REFUND),
        differences=day_differences(expected, booked, elsewhere),
        problems=books.problems,
        totals=books.totals,
    )


def _unique(movements: list[BookedMovement]) -> list[Movement]:
    """One movement per payment or refund (the day's and the looked-up lists overlap)."""
    return list({m.key: m for m in movements}.values())


def _count(keys: set[MovementKey], kind: EntryKind) -> int:
    return sum(1 for k, _ in keys if k is kind)
