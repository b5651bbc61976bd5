"""Refund holds: a refund is paid from the merchant's available balance, so the amount of a
refund in flight is held on that balance until the refund is booked or fails. Pure.

available = the merchant_available account's balance - the amounts still held.
A hold is placed only if the available balance covers it, in a transaction serialized per
(merchant, environment, currency): two refunds can never both see the same money.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum


class HoldStatus(StrEnum):
    HELD = "held"
    # The refund was booked: its entry now carries the amount.
    CONSUMED = "consumed"
    # The refund failed or was refused after all: the amount is available again.
    RELEASED = "released"


@dataclass(frozen=True)
class HoldRequest:
    refund_id: uuid.UUID
    payment_id: uuid.UUID
    merchant_id: uuid.UUID
    environment: str
    currency: str
    amount_minor: int

    @property
    def balance_key(self) -> tuple[uuid.UUID, str, str]:
        """What holds are serialized on: one merchant's balance in one currency."""
        return (self.merchant_id, self.environment, self.currency)


@dataclass(frozen=True)
class HoldDecision:
    held: bool
    # The available balance before this hold (after every other active hold).
    available_minor: int


def decide_hold(request: HoldRequest, booked_minor: int, held_minor: int) -> HoldDecision:
    """Hold the refund's amount if what is booked, less what is already held, covers it."""
    available = booked_minor - held_minor
    return HoldDecision(held=request.amount_minor <= available, available_minor=available)
