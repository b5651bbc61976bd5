"""The accounting CSV: a header, amounts in both units, and no cell a spreadsheet runs."""

from __future__ import annotations

import csv
import io

import pytest

from api_gateway import export_csv


def _payment(**fields: object) -> dict[str, object]:
    return {
        "id": "p1",
        "reference": "order-1",
        "status": "completed",
        "amount": 3000,
        "amount_minor": 300000,
        "platform_fee_minor": 4500,
        "net_amount_minor": 295500,
        "currency": "XOF",
        **fields,
    }


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_a_spreadsheet_would_run_is_quoted_as_text(start: str) -> None:
    text = export_csv.lines([_payment(description=f"{start}SUM(A1:A9)")])
    [row] = csv.DictReader(io.StringIO(export_csv.lines([], header=True) + text))
    assert row["description"] == f"'{start}SUM(A1:A9)"


def test_rows_carry_amount_fee_and_net_and_leave_absent_fields_empty() -> None:
    text = export_csv.lines([_payment(operator=None)], header=True)
    [row] = csv.DictReader(io.StringIO(text))
    assert (row["amount_minor"], row["fee_minor"], row["net_minor"]) == ("300000", "4500", "295500")
    assert row["operator"] == "" and row["reference"] == "order-1"
