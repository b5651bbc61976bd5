"""The sandbox decision table, as pure functions of (attempt, now, delay)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from provider_connectors.connectors.sandbox import rules
from provider_connectors.connectors.sandbox.rules import Scenario
from provider_connectors.domain.model import Attempt, ProviderResult, RefundAttempt

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DELAY = timedelta(seconds=1)


def attempt(phone: str = "+22997000001", **changes: object) -> Attempt:
    base = Attempt(
        payment_id=uuid.uuid4(),
        provider="sandbox",
        merchant_id=uuid.uuid4(),
        environment="test",
        reference="order-1",
        amount=3000,
        currency="XOF",
        operator="mtn",
        phone=phone,
        psp_reference=None,
        status="pending",
        next_poll_at=None,
        expires_at=NOW + timedelta(minutes=15),
        otp_attempts=0,
        created_at=NOW,
        updated_at=NOW,
        data={},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def initiated(phone: str, **changes: object) -> Attempt:
    """The attempt as stored after `initiate`: processing with its simulated clock."""
    start = attempt(phone, **changes)
    result = rules.initiate(start, NOW, DELAY)
    return replace(
        start, status=result.status, next_poll_at=result.next_poll_at, data=dict(result.data)
    )


@pytest.mark.parametrize(
    ("phone", "scenario"),
    [
        ("+22997000001", Scenario.APPROVE),
        ("+22997000002", Scenario.REFUSE),
        ("+22997000003", Scenario.SILENT),
        ("+22997000004", Scenario.REFUND_DECLINED),
        ("+22997000005", Scenario.LATE_SUCCESS),
        ("+2250700000002", Scenario.REFUSE),
        ("+22997123456", Scenario.APPROVE),
        ("+229 97 00 00 03", Scenario.SILENT),
        (None, Scenario.APPROVE),
    ],
)
def test_last_six_digits_choose_the_scenario(phone: str | None, scenario: Scenario) -> None:
    assert rules.scenario_of(phone) is scenario


def test_approving_number_is_processing_at_once_then_completed_after_the_delay() -> None:
    started = initiated("+22997000001")
    assert started.status == "processing"
    assert started.next_poll_at == NOW + DELAY
    assert rules.fetch_status(started, NOW + DELAY / 2).status is None
    done = rules.fetch_status(started, NOW + DELAY)
    assert done.status == "completed"
    assert done.psp_reference is not None and done.psp_reference.startswith("sbx_")
    assert done.next_poll_at is None


def test_completion_reports_one_percent_fee_rounded_half_up() -> None:
    done = rules.fetch_status(initiated("+22997000001"), NOW + DELAY)
    assert done.fee_minor == 3000  # 1 % of 300 000 minor
    odd = initiated("+22997000001", amount=1)  # 100 minor -> 1.00
    assert rules.fetch_status(odd, NOW + DELAY).fee_minor == 1
    assert rules.decided(replace(odd, amount=150)).fee_minor == 150


def test_psp_reference_is_stable_for_a_payment() -> None:
    started = initiated("+22997000001")
    first = rules.fetch_status(started, NOW + DELAY)
    again = rules.fetch_status(started, NOW + 2 * DELAY)
    assert first.psp_reference == again.psp_reference


def test_refusing_number_fails_with_insufficient_funds_in_english() -> None:
    started = initiated("+22997000002")
    assert started.status == "processing"
    failed = rules.fetch_status(started, NOW + DELAY)
    assert failed.status == "failed"
    assert failed.failure_code == "insufficient_funds"
    assert failed.failure_message and "insufficient" in failed.failure_message


def test_silent_number_stays_processing_and_is_not_polled() -> None:
    started = initiated("+22997000003")
    assert started.status == "processing" and started.next_poll_at is None
    assert rules.fetch_status(started, NOW + timedelta(days=1)).status is None


def test_late_success_number_answers_the_delay_after_the_platforms_cancel() -> None:
    started = initiated("+22997000005")
    expires_at = NOW + timedelta(minutes=15)
    cancel_at = expires_at + timedelta(seconds=30)
    assert rules.fetch_status(started, cancel_at).status is None
    cancelled = rules.cancel(started, cancel_at, DELAY)
    assert cancelled.status is None
    assert cancelled.next_poll_at == cancel_at + DELAY
    after_cancel = replace(started, next_poll_at=cancelled.next_poll_at, data=dict(cancelled.data))
    assert rules.fetch_status(after_cancel, cancel_at + DELAY / 2).status is None
    late = rules.fetch_status(after_cancel, cancel_at + DELAY)
    assert late.status == "completed"


def test_late_success_without_a_cancel_answers_a_while_after_expiry() -> None:
    started = initiated("+22997000005")
    fallback = NOW + timedelta(minutes=15) + rules.LATE_SUCCESS_FALLBACK + DELAY
    assert started.next_poll_at == fallback
    assert rules.fetch_status(started, fallback - DELAY).status is None
    assert rules.fetch_status(started, fallback).status == "completed"


def test_cancel_stops_an_approving_customer_for_good() -> None:
    started = initiated("+22997000001")
    result = rules.cancel(started, NOW, DELAY)
    assert result.status == "cancelled" and result.next_poll_at is None
    after = replace(started, status="cancelled")
    assert rules.fetch_status(after, NOW + timedelta(hours=1)).status is None


def test_cancel_of_a_settled_payment_is_no_news() -> None:
    assert rules.cancel(attempt(status="completed"), NOW, DELAY) == ProviderResult()


def test_otp_operator_awaits_the_code() -> None:
    result = rules.initiate(attempt(operator="coris"), NOW, DELAY)
    assert result.status == "awaiting_otp"
    assert result.otp_attempts_left == 3
    assert result.next_poll_at is None


def test_right_otp_completes_at_once() -> None:
    waiting = attempt(operator="coris", status="awaiting_otp")
    result = rules.submit_otp(waiting, "123456", NOW, DELAY)
    assert result.status == "completed" and result.fee_minor == 3000


def test_right_otp_on_refusing_number_fails() -> None:
    waiting = attempt("+22997000002", operator="coris", status="awaiting_otp")
    result = rules.submit_otp(waiting, "123456", NOW, DELAY)
    assert result.status == "failed" and result.failure_code == "insufficient_funds"


def test_wrong_otp_counts_down_then_fails_after_three() -> None:
    waiting = attempt(operator="coris", status="awaiting_otp")
    first = rules.submit_otp(waiting, "000000", NOW, DELAY)
    assert first.status == "awaiting_otp"
    assert (first.otp_attempts, first.otp_attempts_left) == (1, 2)
    assert first.failure_code == "otp_invalid"
    second = rules.submit_otp(replace(waiting, otp_attempts=1), "000000", NOW, DELAY)
    assert second.status == "awaiting_otp" and second.otp_attempts_left == 1
    third = rules.submit_otp(replace(waiting, otp_attempts=2), "000000", NOW, DELAY)
    assert third.status == "failed"
    assert third.failure_code == "otp_attempts_exceeded"
    assert third.otp_attempts_left == 0


def test_otp_outside_awaiting_otp_is_no_news() -> None:
    done = attempt(operator="coris", status="completed")
    assert rules.submit_otp(done, "123456", NOW, DELAY).status is None


def _refund(of: Attempt, data: dict[str, object] | None = None) -> RefundAttempt:
    return RefundAttempt(
        refund_id=uuid.uuid4(),
        payment_id=of.payment_id,
        provider="sandbox",
        amount=1000,
        currency="XOF",
        psp_reference=None,
        status="pending",
        next_poll_at=None,
        created_at=NOW,
        updated_at=NOW,
        data=data or {},
    )


def test_refund_completes_after_the_delay() -> None:
    paid = attempt(status="completed")
    started = rules.refund(paid, NOW, DELAY)
    assert started.status == "pending" and started.next_poll_at == NOW + DELAY
    refund = _refund(paid, dict(started.data))
    assert rules.fetch_refund_status(paid, refund, NOW).status == "pending"
    done = rules.fetch_refund_status(paid, refund, NOW + DELAY)
    assert done.status == "completed" and done.psp_reference


def test_refund_of_000004_is_declined() -> None:
    paid = attempt("+22997000004", status="completed")
    refund = _refund(paid, dict(rules.refund(paid, NOW, DELAY).data))
    declined = rules.fetch_refund_status(paid, refund, NOW + DELAY)
    assert declined.status == "failed" and declined.failure_code == "refund_declined"
