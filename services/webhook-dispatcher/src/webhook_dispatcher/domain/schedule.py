"""The retry schedule: how long to wait before each delivery attempt.

Entry `i` of the schedule is the delay before attempt `i + 1`, so the schedule's length is
the number of attempts a delivery gets before it is dead. Each delay is jittered by ±10 %
so a merchant coming back online is not hit by every pending retry in the same second.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

DEFAULT_SCHEDULE = "0,5,300,1800,7200,18000,36000,36000,36000,36000,43200,43200"
JITTER = 0.10

Schedule = tuple[float, ...]


def parse_schedule(text: str) -> Schedule:
    """Comma-separated, non-negative seconds; at least one entry (the first attempt)."""
    parts = [part.strip() for part in text.split(",")]
    if not parts or any(not part for part in parts):
        raise ValueError(f"retry schedule {text!r}: expected comma-separated seconds")
    try:
        delays = tuple(float(part) for part in parts)
    except ValueError as exc:
        raise ValueError(f"retry schedule {text!r}: expected comma-separated seconds") from exc
    if any(delay < 0 or delay != delay or delay == float("inf") for delay in delays):
        raise ValueError(f"retry schedule {text!r}: delays must be finite and >= 0")
    return delays


def jittered(delay: float, rng: random.Random | None = None) -> float:
    """`delay` moved by up to ±10 %; zero stays zero (the first attempt is immediate)."""
    spread = delay * JITTER
    return delay + (rng or random).uniform(-spread, spread)


def delay_before_attempt(schedule: Schedule, attempt: int) -> float | None:
    """Seconds (unjittered) to wait before 1-based `attempt`; None when there is none left."""
    if attempt < 1 or attempt > len(schedule):
        return None
    return schedule[attempt - 1]


def next_attempt_at(
    schedule: Schedule, attempts_made: int, now: datetime, rng: random.Random | None = None
) -> datetime | None:
    """When the next attempt is due after `attempts_made` attempts; None once exhausted."""
    delay = delay_before_attempt(schedule, attempts_made + 1)
    if delay is None:
        return None
    return now + timedelta(seconds=jittered(delay, rng))
