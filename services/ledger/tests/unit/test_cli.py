"""`fluxpay-ledger` runs the worker by default; `reconcile` needs a day."""

from __future__ import annotations

import uuid
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


def test_reconcile_can_narrow_to_an_environment_and_a_merchant() -> None:
    merchant = uuid.uuid4()
    args = parse_args(
        ["reconcile", "--day", "2026-06-01", "--environment", "test", "--merchant", str(merchant)]
    )
    assert (args.environment, args.merchant, args.provider) == ("test", merchant, None)


def test_reconcile_refuses_a_malformed_merchant_or_environment() -> None:
    with pytest.raises(SystemExit):
        parse_args(["reconcile", "--day", "2026-06-01", "--merchant", "shop-7"])
    with pytest.raises(SystemExit):
        parse_args(["reconcile", "--day", "2026-06-01", "--environment", "prod"])


def test_reconcile_refuses_a_malformed_day() -> None:
    with pytest.raises(SystemExit):
        parse_args(["reconcile", "--day", "01/06/2026"])
