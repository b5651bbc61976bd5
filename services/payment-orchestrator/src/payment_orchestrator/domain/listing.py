"""A merchant's lists: which payments or refunds a query selects and in what order. Pure.

Lists run newest first on (created_at, id); a page starts strictly after the cursor of the
last object the merchant saw, so payments created meanwhile land before the first page
and never shift or repeat the pages that follow (keyset pagination).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from payment_orchestrator.domain.payment import Payment


@dataclass(frozen=True, order=True)
class Cursor:
    created_at: datetime
    id: uuid.UUID


@dataclass(frozen=True)
class Listing:
    """What a list query asks: the merchant's scope, the filters, the page."""

    merchant_id: uuid.UUID
    environment: str
    limit: int
    after: Cursor | None = None
    # The listed object's own status (a payment's, or a refund's).
    status: str | None = None
    # On the payment (a refund's payment for refund lists).
    operator: str | None = None
    provider: str | None = None
    country: str | None = None
    currency: str | None = None
    reference_prefix: str | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None
    payment_id: uuid.UUID | None = None


def payment_matches(listing: Listing, payment: Payment) -> bool:
    """Whether the payment's own fields pass the listing's payment filters."""
    wanted = (
        (listing.operator, payment.operator),
        (listing.provider, payment.provider),
        (listing.country, payment.country),
        (listing.currency, payment.currency),
    )
    prefix = listing.reference_prefix
    return all(want is None or want == have for want, have in wanted) and (
        prefix is None or payment.reference.startswith(prefix)
    )


def in_page(listing: Listing, cursor: Cursor) -> bool:
    """Whether an object created at `cursor` is inside the range and after the page start."""
    if listing.created_gte is not None and cursor.created_at < listing.created_gte:
        return False
    if listing.created_lt is not None and cursor.created_at >= listing.created_lt:
        return False
    return listing.after is None or cursor < listing.after
