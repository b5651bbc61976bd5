"""Which period's due a scheduler run issues, for monthly, weekly and one-off types."""

from __future__ import annotations

from datetime import date

from api_gateway.dues_rules import Period, Schedule, due_to_issue, period_on

MONTHLY_5 = Schedule("monthly", 5, None)
WEEKLY_WED = Schedule("weekly", 3, None)
ONE_OFF = Schedule(None, None, date(2027, 1, 15))


def test_a_monthly_due_is_issued_from_its_day_of_the_month() -> None:
    joined = date(2026, 1, 1)
    assert due_to_issue(MONTHLY_5, date(2027, 3, 4), joined) is None
    assert due_to_issue(MONTHLY_5, date(2027, 3, 5), joined) == Period("2027-03", date(2027, 3, 5))
    assert due_to_issue(MONTHLY_5, date(2027, 3, 31), joined) == Period("2027-03", date(2027, 3, 5))


def test_a_weekly_due_is_issued_from_its_day_of_the_week_in_iso_weeks() -> None:
    joined = date(2026, 1, 1)
    assert due_to_issue(WEEKLY_WED, date(2027, 1, 5), joined) is None  # a Tuesday
    assert due_to_issue(WEEKLY_WED, date(2027, 1, 6), joined) == Period(
        "2027-W01", date(2027, 1, 6)
    )
    # 2026-12-31 is in ISO week 53 of 2026.
    assert period_on(WEEKLY_WED, date(2026, 12, 31)).name == "2026-W53"


def test_nobody_is_charged_for_a_period_due_before_they_joined() -> None:
    assert due_to_issue(MONTHLY_5, date(2027, 3, 20), date(2027, 3, 10)) is None
    assert due_to_issue(MONTHLY_5, date(2027, 4, 5), date(2027, 3, 10)) is not None


def test_a_one_off_is_due_once_on_its_date_for_every_payer() -> None:
    assert due_to_issue(ONE_OFF, date(2027, 1, 14), date(2026, 1, 1)) is None
    assert due_to_issue(ONE_OFF, date(2027, 2, 1), date(2027, 1, 20)) == Period(
        "once", date(2027, 1, 15)
    )
