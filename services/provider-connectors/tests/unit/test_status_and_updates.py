"""Which PSP news applies, fee arithmetic, and the normalized update built from an attempt."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from provider_connectors.domain.fees import percent_fee_minor
from provider_connectors.domain.model import Attempt
from provider_connectors.domain.status import (
    is_publishable,
    is_terminal,
    refund_should_apply,
    should_apply,
)
from provider_connectors.service_layer.updates import payment_update

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize("terminal", ["completed", "failed", "cancelled"])
@pytest.mark.parametrize("new", ["processing", "awaiting_otp", "failed", "cancelled", "pending"])
def test_terminal_states_stay_terminal(terminal: str, new: str) -> None:
    assert is_terminal(terminal)  # type: ignore[arg-type]
    assert not should_apply(terminal, new)  # type: ignore[arg-type]


@pytest.mark.parametrize("current", ["pending", "processing", "failed", "cancelled"])
def test_confirmed_success_always_applies(current: str) -> None:
    assert should_apply(current, "completed")  # type: ignore[arg-type]


def test_same_status_is_not_news() -> None:
    assert not should_apply("processing", "processing")
    assert not should_apply("completed", "completed")


def test_nothing_moves_back_to_pending_and_pending_is_never_published() -> None:
    assert not should_apply("processing", "pending")
    assert should_apply("pending", "processing")
    assert not is_publishable("pending")
    assert is_publishable("awaiting_otp")


def test_refund_settles_once() -> None:
    assert refund_should_apply("pending", "completed")
    assert not refund_should_apply("completed", "failed")
    assert not refund_should_apply("pending", "pending")


@pytest.mark.parametrize(
    ("amount_minor", "bp", "fee"),
    [(300_000, 100, 3000), (150, 100, 2), (149, 100, 1), (50, 100, 1), (49, 100, 0), (0, 100, 0)],
)
def test_percent_fee_rounds_half_up(amount_minor: int, bp: int, fee: int) -> None:
    assert percent_fee_minor(amount_minor, bp) == fee


def _attempt(status: str, data: dict[str, object]) -> Attempt:
    return Attempt(
        payment_id=uuid.uuid4(),
        provider="sandbox",
        merchant_id=uuid.uuid4(),
        environment="test",
        reference="r",
        amount=100,
        currency="XOF",
        operator=None,
        phone=None,
        psp_reference="sbx_1",
        status=status,  # type: ignore[arg-type]
        next_poll_at=None,
        expires_at=None,
        otp_attempts=0,
        created_at=NOW,
        updated_at=NOW,
        data=data,
    )


def test_update_shows_only_the_fields_of_its_status() -> None:
    data = {
        "failure_code": "otp_invalid",
        "otp_attempts_left": 2,
        "fee_minor": 100,
        "correlation_id": "req-1",
    }
    completed = payment_update(_attempt("completed", data))
    assert completed.fee_minor == 100
    assert completed.failure_code is None and completed.otp_attempts_left is None
    assert completed.correlation_id == "req-1"
    waiting = payment_update(_attempt("awaiting_otp", data))
    assert waiting.failure_code == "otp_invalid" and waiting.otp_attempts_left == 2
    assert waiting.fee_minor is None


def test_pending_attempt_reads_as_processing() -> None:
    assert payment_update(_attempt("pending", {})).status == "processing"
