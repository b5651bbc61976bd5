"""Reconciliation, pure: what the books say against what another system says happened.

The ledger knows its own movements; the orchestrator (completed and refunded payments) and a
PSP's daily report know theirs. `compare` lists every difference between two such lists;
none is expected. `day_differences` does it for one day, when the two systems may file a
movement that straddles midnight under neighbouring days.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ledger.domain.books import EntryKind

MovementKey = tuple[EntryKind, uuid.UUID]


@dataclass(frozen=True)
class Movement:
    """A payment collected or a refund paid out: gross amount, always positive."""

    kind: EntryKind
    payment_id: uuid.UUID
    refund_id: uuid.UUID | None
    environment: str
    currency: str
    amount_minor: int
    # The PSP's fee on a payment; None when this side does not say (it is then not compared).
    psp_fee_minor: int | None = None

    @property
    def key(self) -> MovementKey:
        if self.kind is EntryKind.REFUND:
            assert self.refund_id is not None
            return (self.kind, self.refund_id)
        return (self.kind, self.payment_id)


@dataclass(frozen=True)
class DayFilter:
    """A UTC day [start, end) and the optional provider, environment and merchant."""

    start: datetime
    end: datetime
    provider: str | None = None
    environment: str | None = None
    merchant_id: uuid.UUID | None = None


@dataclass(frozen=True, kw_only=True)
class BookedMovement(Movement):
    """A movement as the ledger booked it, with its fees and entry."""

    entry_id: uuid.UUID
    provider: str
    platform_fee_minor: int
    late_success: bool
    effective_at: datetime


def split_keys(keys: Iterable[MovementKey]) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Payment ids and refund ids, to look each kind up where it is stored."""
    payments: list[uuid.UUID] = []
    refunds: list[uuid.UUID] = []
    for kind, ident in keys:
        (refunds if kind is EntryKind.REFUND else payments).append(ident)
    return payments, refunds


DifferenceKind = Literal[
    "missing_in_ledger",
    "not_expected",
    "environment_differs",
    "currency_differs",
    "amount_differs",
    "psp_fee_differs",
]


@dataclass(frozen=True)
class Difference:
    kind: DifferenceKind
    key: MovementKey
    expected: Movement | None
    booked: Movement | None

    def describe(self) -> str:
        what, ident = self.key
        amounts = f"expected={_amount(self.expected)} booked={_amount(self.booked)}"
        return f"{self.kind}: {what.value} {ident} {amounts}"


def compare(expected: Iterable[Movement], booked: Iterable[Movement]) -> list[Difference]:
    """Every difference between two lists of movements, in a stable order."""
    wanted = {m.key: m for m in expected}
    found = {m.key: m for m in booked}
    differences: list[Difference] = []
    for key in sorted(wanted.keys() | found.keys(), key=lambda k: (k[0].value, str(k[1]))):
        difference = _difference(key, wanted.get(key), found.get(key))
        if difference is not None:
            differences.append(difference)
    return differences


def day_differences(
    expected: Iterable[Movement],
    booked: Iterable[Movement],
    filed_elsewhere: Collection[MovementKey],
) -> list[Difference]:
    """The differences of one day, where `expected` is the other system's day and `booked`
    holds the ledger's day plus the ledger's entries of every expected movement, whatever day
    it filed them under. A booked movement the other system completed on another day
    (`filed_elsewhere`) belongs to that day's comparison, not this one's."""
    wanted = list(expected)
    keys = {m.key for m in wanted}
    kept = [m for m in booked if m.key in keys or m.key not in filed_elsewhere]
    return compare(wanted, kept)


def _difference(
    key: MovementKey, expected: Movement | None, booked: Movement | None
) -> Difference | None:
    if booked is None:
        return Difference("missing_in_ledger", key, expected, None)
    if expected is None:
        return Difference("not_expected", key, None, booked)
    if expected.environment != booked.environment:
        return Difference("environment_differs", key, expected, booked)
    if expected.currency != booked.currency:
        return Difference("currency_differs", key, expected, booked)
    if expected.amount_minor != booked.amount_minor:
        return Difference("amount_differs", key, expected, booked)
    if _psp_fees_differ(expected, booked):
        return Difference("psp_fee_differs", key, expected, booked)
    return None


def _psp_fees_differ(expected: Movement, booked: Movement) -> bool:
    if expected.psp_fee_minor is None or booked.psp_fee_minor is None:
        return False
    return expected.psp_fee_minor != booked.psp_fee_minor


def _amount(movement: Movement | None) -> str:
    if movement is None:
        return "-"
    fee = "" if movement.psp_fee_minor is None else f" (psp fee {movement.psp_fee_minor})"
    return f"{movement.amount_minor} {movement.currency} {movement.environment}{fee}"
