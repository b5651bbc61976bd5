"""Reconciliation, pure: what the books say against what another system says happened.

The ledger knows its own movements; the orchestrator (completed and refunded payments) and a
PSP's daily report know theirs. `compare` lists every difference between two such lists;
none is expected. The admin CLI feeds it the orchestrator's side.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
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

    @property
    def key(self) -> MovementKey:
        if self.kind is EntryKind.REFUND:
            assert self.refund_id is not None
            return (self.kind, self.refund_id)
        return (self.kind, self.payment_id)


@dataclass(frozen=True, kw_only=True)
class BookedMovement(Movement):
    """A movement as the ledger booked it, with its fees and entry."""

    entry_id: uuid.UUID
    provider: str
    platform_fee_minor: int
    psp_fee_minor: int
    late_success: bool
    effective_at: datetime


DifferenceKind = Literal["missing_in_ledger", "not_expected", "amount_differs", "currency_differs"]


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


def _difference(
    key: MovementKey, expected: Movement | None, booked: Movement | None
) -> Difference | None:
    if booked is None:
        return Difference("missing_in_ledger", key, expected, None)
    if expected is None:
        return Difference("not_expected", key, None, booked)
    if expected.currency != booked.currency:
        return Difference("currency_differs", key, expected, booked)
    if expected.amount_minor != booked.amount_minor:
        return Difference("amount_differs", key, expected, booked)
    return None


def _amount(movement: Movement | None) -> str:
    return "-" if movement is None else f"{movement.amount_minor} {movement.currency}"
