"""When to ask a PSP again about an attempt that has not settled.

Often at first (the customer usually answers within a minute or two), then less often,
then rarely after the payment's expiry (a late success must still be found: money moved),
and not at all a day after expiry.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from provider_connectors.domain.model import Attempt

DEFAULT_EXPIRY = timedelta(minutes=15)
LATE_SUCCESS_WINDOW = timedelta(hours=24)


def next_poll_at(attempt: Attempt, now: datetime, min_interval: timedelta) -> datetime | None:
    expires_at = attempt.expires_at or attempt.created_at + DEFAULT_EXPIRY
    age = now - attempt.created_at
    if now >= expires_at + LATE_SUCCESS_WINDOW:
        return None
    if now >= expires_at:
        return now + max(min_interval, timedelta(minutes=5))
    if age < timedelta(minutes=2):
        return now + min_interval
    return now + max(min_interval, timedelta(seconds=30))
