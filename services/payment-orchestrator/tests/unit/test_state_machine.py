"""Every (status, trigger) pair: the allowed moves happen, the others are refused."""

from __future__ import annotations

import itertools

import pytest

from payment_orchestrator.domain.routing import route
from payment_orchestrator.domain.state_machine import (
    TERMINAL,
    Refusal,
    Status,
    Transition,
    Trigger,
    decide,
)

S, T = Status, Trigger
# The complete table of moves that change the status; everything else is a refusal or,
# for a repeated provider report, a no-op.
ALLOWED = {
    (S.AWAITING_PAYMENT, T.OPERATOR_SELECTED): S.PENDING,
    **{
        (origin, trigger): target
        for origin in (S.AWAITING_PAYMENT, S.PENDING, S.AWAITING_OTP, S.PROCESSING)
        for trigger, target in (
            (T.PROVIDER_COMPLETED, S.COMPLETED),
            (T.PROVIDER_FAILED, S.FAILED),
            (T.PROVIDER_CANCELLED, S.CANCELLED),
            (T.MERCHANT_CANCEL, S.CANCELLED),
            (T.EXPIRE, S.EXPIRED),
        )
    },
    (S.AWAITING_PAYMENT, T.PROVIDER_PROCESSING): S.PROCESSING,
    (S.AWAITING_PAYMENT, T.PROVIDER_AWAITING_OTP): S.AWAITING_OTP,
    (S.PENDING, T.PROVIDER_PROCESSING): S.PROCESSING,
    (S.PENDING, T.PROVIDER_AWAITING_OTP): S.AWAITING_OTP,
    (S.PENDING, T.PROVIDER_AWAITING_PAYMENT): S.AWAITING_PAYMENT,
    (S.AWAITING_OTP, T.PROVIDER_PROCESSING): S.PROCESSING,
    (S.COMPLETED, T.FULLY_REFUNDED): S.REFUNDED,
    # Money moved after we gave up on the payment: recorded, never dropped.
    (S.EXPIRED, T.PROVIDER_COMPLETED): S.COMPLETED,
    (S.CANCELLED, T.PROVIDER_COMPLETED): S.COMPLETED,
    (S.FAILED, T.PROVIDER_COMPLETED): S.COMPLETED,
}
EVENTS = {
    S.PROCESSING: "collect.payment.processing",
    S.COMPLETED: "collect.payment.completed",
    S.FAILED: "collect.payment.failed",
    S.CANCELLED: "collect.payment.cancelled",
    S.EXPIRED: "collect.payment.expired",
}


@pytest.mark.parametrize(("status", "trigger"), list(itertools.product(Status, Trigger)))
def test_every_status_and_trigger(status: Status, trigger: Trigger) -> None:
    decision = decide(status, trigger)
    expected = ALLOWED.get((status, trigger))
    if expected is not None:
        assert isinstance(decision, Transition) and decision.changed
        assert decision.status is expected
        assert decision.event == EVENTS.get(expected)
        assert decision.late_success == (status in TERMINAL and trigger is T.PROVIDER_COMPLETED)
        assert decision.cancel_at_provider == (trigger in (T.MERCHANT_CANCEL, T.EXPIRE))
    elif isinstance(decision, Transition):
        # Only a provider repeating the status the payment already has is a no-op.
        assert not decision.changed and decision.status is status
        assert trigger.value == f"provider_{status.value}"
    else:
        assert isinstance(decision, Refusal) and decision.reason


@pytest.mark.parametrize("status", sorted(TERMINAL - {S.COMPLETED}))
def test_terminal_states_stay_terminal_except_for_a_late_success(status: Status) -> None:
    for trigger in Trigger:
        decision = decide(status, trigger)
        if trigger is T.PROVIDER_COMPLETED and status is not S.REFUNDED:
            assert isinstance(decision, Transition) and decision.late_success
        elif isinstance(decision, Transition):
            assert not decision.changed
        else:
            assert isinstance(decision, Refusal)


def test_completed_only_moves_to_refunded() -> None:
    moves = {t: d.status for t in Trigger if isinstance(d := decide(S.COMPLETED, t), Transition)}
    assert moves == {T.FULLY_REFUNDED: S.REFUNDED, T.PROVIDER_COMPLETED: S.COMPLETED}
    assert not decide(S.COMPLETED, T.PROVIDER_COMPLETED).changed  # type: ignore[union-attr]


def test_routing_sends_test_to_sandbox_and_live_by_most_specific_rule() -> None:
    table = {"BJ:mtn": "mtn_momo", "BJ:*": "novasend", "*:card": "stripe"}
    assert route(table, "test", "BJ", "moov") == "sandbox"
    assert route(table, "live", "BJ", "mtn") == "mtn_momo"
    assert route(table, "live", "BJ", "moov") == "novasend"
    assert route(table, "live", "CI", "card") == "stripe"
    assert route(table, "live", "TG", "moov") is None
    precise = {**table, "BJ:mtn:XOF:hosted": "novasend"}
    assert route(precise, "live", "BJ", "mtn", "XOF", "hosted") == "novasend"
    assert route(precise, "live", "BJ", "mtn", "XOF", "direct") == "mtn_momo"
