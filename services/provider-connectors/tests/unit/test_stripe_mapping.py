"""Stripe: form encoding, currency exponents, the Checkout status map, events, signatures."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from fluxpay_common.signing import signature_header
from provider_connectors.connectors.base import InvalidSignature
from provider_connectors.connectors.stripe import forms, transformers, webhooks
from provider_connectors.domain.model import Attempt

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
SECRET = "whsec_test"


def _attempt(currency: str = "EUR", expires_in: timedelta | None = None) -> Attempt:
    return Attempt(
        payment_id=uuid.uuid4(),
        provider="stripe",
        merchant_id=uuid.uuid4(),
        environment="live",
        reference="order-9",
        amount=5000,
        currency=currency,
        operator="card",
        phone=None,
        psp_reference=None,
        status="pending",
        next_poll_at=None,
        expires_at=NOW + expires_in if expires_in else None,
        otp_attempts=0,
        created_at=NOW,
        updated_at=NOW,
        data={"customer": {"email": "a@example.com"}},
    )


def test_form_encoding_brackets_nested_params() -> None:
    pairs = forms.form_encode(
        {"line_items": [{"price_data": {"unit_amount": 5}}], "metadata": {"a": "b"}, "x": None}
    )
    assert pairs == [("line_items[0][price_data][unit_amount]", "5"), ("metadata[a]", "b")]


@pytest.mark.parametrize(
    ("currency", "stripe_amount", "minor"),
    [("EUR", 500000, 500000), ("XOF", 5000, 500000), ("RWF", 5000, 500000)],
)
def test_amounts_follow_each_currency_exponent(currency: str, stripe_amount: int, minor: int):
    assert forms.to_stripe_amount(5000, currency) == stripe_amount
    assert forms.to_our_minor(stripe_amount, currency) == minor


def test_checkout_expiry_stays_within_stripe_bounds_and_is_deterministic() -> None:
    short = _attempt(expires_in=timedelta(minutes=5))
    assert transformers.checkout_expiry(short) == NOW + timedelta(minutes=31)
    long = _attempt(expires_in=timedelta(days=3))
    assert transformers.checkout_expiry(long) == NOW + timedelta(hours=23, minutes=59)
    assert transformers.checkout_expiry(short) == transformers.checkout_expiry(short)


def test_session_params_carry_our_ids_and_the_amount() -> None:
    attempt = _attempt()
    params = transformers.session_params(attempt, "https://ok", "https://ko")
    assert params["client_reference_id"] == str(attempt.payment_id)
    assert params["line_items"][0]["price_data"]["unit_amount"] == 500000
    assert params["payment_intent_data"]["metadata"]["payment_id"] == str(attempt.payment_id)


def _session(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": "cs_1",
        "url": "https://checkout.stripe.com/c/pay/cs_1",
        "status": "open",
        "payment_status": "unpaid",
        "amount_total": 500000,
        "currency": "eur",
        "payment_intent": None,
    }
    body.update(changes)
    return body


def test_open_session_awaits_payment_at_its_url() -> None:
    result = transformers.session_result(_session())
    assert result.status == "awaiting_payment"
    assert result.checkout_url == "https://checkout.stripe.com/c/pay/cs_1"
    assert result.psp_reference == "cs_1"


def test_paid_session_completes_with_the_stripe_fee() -> None:
    intent = {
        "id": "pi_1",
        "status": "succeeded",
        "latest_charge": {"balance_transaction": {"fee": 14530}},
    }
    result = transformers.session_result(
        _session(status="complete", payment_status="paid", payment_intent=intent)
    )
    assert result.status == "completed"
    assert (result.fee_minor, result.charged_amount_minor) == (14530, 500000)
    assert result.data["stripe_payment_intent"] == "pi_1"


def test_expired_session_fails_with_the_last_card_error_or_as_a_timeout() -> None:
    declined = {
        "id": "pi_2",
        "status": "requires_payment_method",
        "last_payment_error": {
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
        },
    }
    failed = transformers.session_result(_session(status="expired", payment_intent=declined))
    assert failed.status == "failed" and failed.failure_code == "insufficient_funds"
    silent = transformers.session_result(_session(status="expired"))
    assert silent.failure_code == "customer_timeout"


def test_complete_but_unpaid_session_is_still_processing() -> None:
    result = transformers.session_result(_session(status="complete", payment_status="unpaid"))
    assert result.status == "processing"


@pytest.mark.parametrize(
    ("status", "ours"),
    [
        ("succeeded", "completed"),
        ("pending", "pending"),
        ("requires_action", "pending"),
        ("failed", "failed"),
        ("canceled", "failed"),
    ],
)
def test_refund_status_map(status: str, ours: str) -> None:
    assert transformers.refund_result({"id": "re_1", "status": status}).status == ours


def _event(kind: str, obj: dict[str, object]) -> bytes:
    return json.dumps(
        {"id": "evt_1", "object": "event", "type": kind, "data": {"object": obj}}
    ).encode()


def test_session_event_names_our_payment_and_asks_for_a_recheck() -> None:
    payment_id = uuid.uuid4()
    event = webhooks.parse_event(
        _event("checkout.session.completed", {"id": "cs_1", "client_reference_id": str(payment_id)})
    )
    assert event.payment_id == payment_id and event.psp_reference == "cs_1" and event.recheck


@pytest.mark.parametrize("kind", ["payment_intent.payment_failed", "payment_intent.failed"])
def test_intent_events_find_our_payment_by_metadata(kind: str) -> None:
    payment_id = uuid.uuid4()
    event = webhooks.parse_event(
        _event(kind, {"id": "pi_1", "metadata": {"payment_id": str(payment_id)}})
    )
    assert event.payment_id == payment_id and event.recheck


def test_charge_refunded_names_the_newest_refund() -> None:
    refund_id = uuid.uuid4()
    charge = {
        "object": "charge",
        "refunds": {
            "data": [
                {"id": "re_2", "metadata": {"refund_id": str(refund_id)}},
                {"id": "re_1", "metadata": {}},
            ]
        },
    }
    event = webhooks.parse_event(_event("charge.refunded", charge))
    assert event.refund_id == refund_id and event.refund_psp_reference == "re_2"


def test_other_events_are_acknowledged_and_ignored() -> None:
    event = webhooks.parse_event(_event("customer.created", {"id": "cus_1"}))
    assert event.payment_id is None and event.refund_id is None and event.psp_reference is None


def test_stripe_signature_verifies_within_tolerance_only() -> None:
    body = _event("customer.created", {})
    now = 1_780_000_000
    good = {"Stripe-Signature": signature_header([SECRET], now, body)}
    webhooks.verify_signature(SECRET, good, body, tolerance=300, now=now + 10)
    with pytest.raises(InvalidSignature):
        webhooks.verify_signature(SECRET, good, body, tolerance=300, now=now + 301)
    with pytest.raises(InvalidSignature):
        webhooks.verify_signature("whsec_other", good, body, tolerance=300, now=now)
    with pytest.raises(InvalidSignature):
        webhooks.verify_signature(SECRET, {}, body, tolerance=300, now=now)
