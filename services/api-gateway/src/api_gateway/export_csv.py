"""Payments as CSV for accounting: one row per payment, amounts, fees and net. Pure.

UTF-8 with a byte-order mark so a spreadsheet reads accents right; a text cell that a
spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return first) is
prefixed with a quote (OWASP's CSV injection advice): a merchant's reference or
description is data, never a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = (
    "id",
    "reference",
    "status",
    "created_at",
    "completed_at",
    "currency",
    "amount",
    "amount_minor",
    "fee_minor",
    "net_minor",
    "refunded_amount",
    "operator",
    "provider",
    "country",
    "mode",
    "description",
    "external_merchant_id",
    "failure_code",
)


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


def row(payment: dict[str, Any]) -> list[Any]:
    fields = {
        **payment,
        "fee_minor": payment.get("platform_fee_minor"),
        "net_minor": payment.get("net_amount_minor"),
    }
    return [safe_cell(fields.get(column)) for column in COLUMNS]


def lines(payments: Iterable[dict[str, Any]], *, header: bool = False) -> str:
    """CSV text (CRLF line ends, as RFC 4180) for these payments, the header first if asked."""
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(COLUMNS)
    writer.writerows(row(p) for p in payments)
    return out.getvalue()
