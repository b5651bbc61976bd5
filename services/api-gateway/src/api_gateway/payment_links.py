"""Payment links: who may still pay through a link, and for how much. Pure.

A link's uses are its payments: a completed one counts for good, an open one holds a use
while the payer can still complete it (a single-use link with a payment under way takes
nobody else), and a failed, cancelled or expired one gives its use back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from api_gateway.errors import ApiError
from api_gateway.schemas import MAX_AMOUNT

# What a payer may choose when the merchant set no bound (the API's own bounds).
MIN_CHOSEN_AMOUNT = 100


@dataclass(frozen=True)
class Link:
    id: uuid.UUID
    merchant_id: uuid.UUID
    environment: str
    slug: str
    amount: int | None
    min_amount: int | None
    max_amount: int | None
    currency: str
    country: str
    description: str | None
    usage_limit: int | None
    expires_at: datetime | None
    active: bool
    created_at: datetime
    completed_count: int
    open_count: int

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @property
    def usage_limit_reached(self) -> bool:
        return self.usage_limit is not None and self.completed_count >= self.usage_limit

    @property
    def uses_held(self) -> int:
        return self.completed_count + self.open_count

    def can_pay(self, now: datetime) -> bool:
        return self.refusal(now) is None

    def refusal(self, now: datetime) -> ApiError | None:
        """Why a new payer cannot pay now, or None."""
        if not self.active:
            return ApiError(409, "payment_link_inactive", "This payment link was deactivated.")
        if self.is_expired(now):
            return ApiError(409, "payment_link_expired", "This payment link has expired.")
        if self.usage_limit_reached:
            return ApiError(
                409, "payment_link_usage_limit_reached", "This payment link was already used."
            )
        if self.usage_limit is not None and self.uses_held >= self.usage_limit:
            return ApiError(
                409,
                "payment_link_in_use",
                "A payment through this link is under way; retry in a few minutes if it"
                " does not complete.",
                headers={"Retry-After": "60"},
            )
        return None

    @property
    def bounds(self) -> tuple[int, int]:
        if self.amount is not None:
            return self.amount, self.amount
        return self.min_amount or MIN_CHOSEN_AMOUNT, self.max_amount or MAX_AMOUNT

    def amount_to_pay(self, chosen: int | None) -> int:
        """The fixed amount, or the payer's choice within the bounds."""
        if self.amount is not None:
            return self.amount
        low, high = self.bounds
        if chosen is None:
            raise ApiError(400, "parameter_missing", "'amount' is required.", "amount")
        if not low <= chosen <= high:
            raise ApiError(
                400,
                "parameter_invalid",
                f"'amount' must be between {low} and {high} {self.currency}.",
                "amount",
            )
        return chosen
