"""A reconciliation report as JSON-ready values: what `fluxpay-ledger reconcile` prints and
what `ReconcileDay` answers (`fluxpay-admin reconcile` prints it as it comes)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from ledger.domain.reconciliation import Difference, Movement
from ledger.service_layer.reconciliation import DayReport

__all__ = ["difference_body", "report_body"]


def report_body(report: DayReport) -> dict[str, Any]:
    """The report as JSON-ready values (also `ReconcileDay`'s answer)."""
    body: dict[str, Any] = {
        "day": report.day,
        "provider": report.provider,
        "environment": report.environment,
        "merchant_id": report.merchant_id,
        "payments_checked": report.payments_checked,
        "refunds_checked": report.refunds_checked,
        "differences": [difference_body(d) for d in report.differences],
        "problems": report.problems,
        "totals": [dataclasses.asdict(t) for t in report.totals],
    }
    return dict(orjson.loads(orjson.dumps(body, default=str)))


def difference_body(difference: Difference) -> dict[str, Any]:
    movement = difference.key[0]
    side = difference.expected or difference.booked
    assert side is not None
    return {
        "kind": difference.kind,
        "movement": movement.value,
        "payment_id": side.payment_id,
        "refund_id": side.refund_id,
        "expected": _movement_body(difference.expected),
        "booked": _movement_body(difference.booked),
        "description": difference.describe(),
    }


def _movement_body(movement: Movement | None) -> dict[str, Any] | None:
    if movement is None:
        return None
    body = dataclasses.asdict(movement)
    for key in ("kind", "payment_id", "refund_id"):
        body.pop(key)
    return body
