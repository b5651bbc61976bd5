"""Who may still pay through a link: open payments hold a use, completed ones count."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from api_gateway.errors import ApiError
from api_gateway.payment_links import Link

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SINGLE_USE = Link(
    id=uuid.uuid4(),
    merchant_id=uuid.uuid4(),
    environment="test",
    slug="s",
    amount=1000,
    min_amount=None,
    max_amount=None,
    currency="XOF",
    country="BJ",
    description=None,
    usage_limit=1,
    expires_at=None,
    active=True,
    created_at=NOW,
    completed_count=0,
    open_count=0,
)


def _refusal(link: Link) -> str | None:
    refusal = link.refusal(NOW)
    return None if refusal is None else refusal.code


def test_a_single_use_link_with_a_payment_under_way_takes_nobody_else() -> None:
    assert _refusal(SINGLE_USE) is None
    assert _refusal(replace(SINGLE_USE, open_count=1)) == "payment_link_in_use"
    used = replace(SINGLE_USE, completed_count=1)
    assert _refusal(used) == "payment_link_usage_limit_reached" and used.usage_limit_reached


def test_a_reusable_link_is_never_used_up() -> None:
    reusable = replace(SINGLE_USE, usage_limit=None, completed_count=50, open_count=3)
    assert reusable.can_pay(NOW) and not reusable.usage_limit_reached


def test_inactive_then_expired_are_said_first() -> None:
    expired = replace(SINGLE_USE, expires_at=NOW - timedelta(seconds=1), completed_count=1)
    assert _refusal(expired) == "payment_link_expired" and expired.is_expired(NOW)
    assert _refusal(replace(expired, active=False)) == "payment_link_inactive"


def test_the_payer_chooses_within_the_bounds_or_pays_the_fixed_amount() -> None:
    assert SINGLE_USE.amount_to_pay(None) == 1000 and SINGLE_USE.amount_to_pay(5) == 1000
    chosen = replace(SINGLE_USE, amount=None, min_amount=500, max_amount=900)
    assert chosen.amount_to_pay(700) == 700 and chosen.bounds == (500, 900)
    for wrong in (None, 499, 901):
        with pytest.raises(ApiError):
            chosen.amount_to_pay(wrong)
