"""The reconcile report an operator reads: JSON on stdout, a summary of what is wrong on stderr."""

from __future__ import annotations

import json
import uuid
from datetime import date

from ledger.domain.books import EntryKind
from ledger.domain.reconciliation import Difference, Movement, compare
from ledger.entrypoints.reconcile import render, summary
from ledger.queries import Total
from ledger.service_layer.reconciliation import DayReport, day_filter

DAY = date(2026, 6, 1)


def _report(differences: list[Difference], problems: list[str] | None = None) -> DayReport:
    total = Total("test", "XOF", "sandbox", "payment", 1, 300_100, 4_502, 0)
    return DayReport(DAY, "sandbox", "test", None, 1, 0, differences, problems or [], [total])


def test_a_clean_report_renders_every_field_and_no_difference() -> None:
    body = json.loads(render(_report([])))
    assert body["day"] == "2026-06-01" and body["provider"] == "sandbox"
    assert (body["payments_checked"], body["refunds_checked"]) == (1, 0)
    assert body["differences"] == [] and body["problems"] == []
    assert body["totals"][0]["platform_fee_minor"] == 4_502
    assert _report([]).clean


def test_a_difference_renders_both_sides_and_is_summarized() -> None:
    payment = uuid.uuid4()
    expected = Movement(EntryKind.PAYMENT, payment, None, "test", "XOF", 300_000, psp_fee_minor=0)
    booked = Movement(EntryKind.PAYMENT, payment, None, "test", "XOF", 300_100)
    report = _report(compare([expected], [booked]), ["entry x unbalanced"])

    [difference] = json.loads(render(report))["differences"]

    assert (difference["kind"], difference["movement"]) == ("amount_differs", "payment")
    assert difference["payment_id"] == str(payment) and difference["refund_id"] is None
    assert difference["expected"]["amount_minor"] == 300_000
    assert difference["booked"]["amount_minor"] == 300_100
    assert not report.clean
    lines = summary(report).splitlines()
    assert lines[0] == "reconcile 2026-06-01: 1 difference(s), 1 problem(s)"
    assert f"amount_differs: payment {payment}" in lines[1]
    assert lines[2] == "  problem: entry x unbalanced"


def test_a_day_is_the_utc_calendar_day() -> None:
    window = day_filter(DAY, "sandbox")
    assert (window.end - window.start).total_seconds() == 86_400
    assert window.start.isoformat() == "2026-06-01T00:00:00+00:00"
