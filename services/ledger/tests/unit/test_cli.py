"""`fluxpay-ledger` runs the worker by default; `reconcile` needs a day."""

from __future__ import annotations

from datetime import date

import pytest

from ledger.entrypoints.main import parse_args


def test_no_sub_command_means_the_worker() -> None:
    assert parse_args([]).command is None


def test_reconcile_takes_a_day_and_an_optional_provider() -> None:
    args = parse_args(["reconcile", "--day", "2026-06-01", "--provider", "sandbox"])
    assert (args.command, args.day, args.provider, args.environment) == (
        "reconcile",
        date(2026, 6, 1),
        "sandbox",
        None,
    )


def test_reconcile_refuses_a_malformed_day() -> None:
    with pytest.raises(SystemExit):
        parse_args(["reconcile", "--day", "01/06/2026"])
