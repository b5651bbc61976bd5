"""Payment types and dues: which period a date falls in and when its due is issued. Pure.

A monthly type is due on its day of the month (1-28, so every month has it), a weekly one
on its ISO day of the week; a period's due is issued on the first scheduler run on or
after its due date, for the payers enrolled by then (nobody is charged for a period that
was due before they joined). A one-off type is due once, on its date, for every payer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

Recurrence = Literal["monthly", "weekly"]
ONCE = "once"


@dataclass(frozen=True)
class Schedule:
    recurrence: Recurrence | None
    due_day: int | None
    due_date: date | None


@dataclass(frozen=True)
class Period:
    name: str
    due_date: date


def period_on(schedule: Schedule, day: date) -> Period:
    """The period `day` falls in, and its due date."""
    match schedule.recurrence:
        case None:
            assert schedule.due_date is not None
            return Period(ONCE, schedule.due_date)
        case "monthly":
            assert schedule.due_day is not None
            return Period(f"{day:%Y-%m}", day.replace(day=schedule.due_day))
        case "weekly":
            assert schedule.due_day is not None
            year, week, weekday = day.isocalendar()
            monday = day - timedelta(days=weekday - 1)
            return Period(f"{year}-W{week:02d}", monday + timedelta(days=schedule.due_day - 1))


def due_to_issue(schedule: Schedule, run_on: date, enrolled_on: date) -> Period | None:
    """The period whose due a run on `run_on` issues for a payer enrolled on `enrolled_on`,
    or None (not yet due, or due before the payer joined)."""
    period = period_on(schedule, run_on)
    if period.due_date > run_on:
        return None
    if schedule.recurrence is not None and period.due_date < enrolled_on:
        return None
    return period
