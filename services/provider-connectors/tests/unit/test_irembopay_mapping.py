"""IremboPay: invoices and pushes, error codes, and both notification signature forms."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from provider_connectors.connectors.base import InvalidSignature
from provider_connectors.connectors.irembopay import transformers, webhooks
from provider_connectors.domain.model import Attempt

SECRET = "sk-irembo"
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _attempt(operator: str = "mtn") -> Attempt:
    return Attempt(
        payment_id=uuid.uuid4(),
        provider="irembopay",
        merchant_id=uuid.uuid4(),
        environment="live",
        reference="rent-10",
        amount=50000,
        currency="RWF",
        operator=operator,
        phone="+250788123456",
        psp_reference=None,
        status="pending",
        next_poll_at=None,
        expires_at=None,
        otp_attempts=0,
        created_at=NOW,
        updated_at=NOW,
        data={"customer": {"name": "Aline", "email": "aline@example.rw"}},
    )


def test_invoice_names_our_payment_and_the_amount_in_rwf() -> None:
    attempt = _attempt()
    body = transformers.invoice_request(attempt, "TST-RWF", "PC-1", "EN", NOW)
    assert body["transactionId"] == str(attempt.payment_id)
    assert body["paymentItems"] == [{"unitAmount": 50000, "quantity": 1, "code": "PC-1"}]
    assert body["customer"]["phoneNumber"] == "0788123456"
    assert body["expiryAt"].startswith("2026-06-01T12:00:00")


@pytest.mark.parametrize(("operator", "provider"), [("mtn", "MTN"), ("airtel", "AIRTEL")])
def test_mobile_money_is_pushed_to_the_07_number(operator: str, provider: str) -> None:
    push = transformers.push_request(_attempt(operator), "880000000001")
    assert push == {
        "accountIdentifier": "0788123456",
        "paymentProvider": provider,
        "invoiceNumber": "880000000001",
    }


def test_banks_and_cards_pay_through_the_invoice_link() -> None:
    assert transformers.push_request(_attempt("bk"), "880000000001") is None


@pytest.mark.parametrize(
    ("code", "ours"),
    [
        ("INVOICE_EXPIRED", "invoice_expired"),
        ("BAD_PHONE_NUMBER", "phone_invalid"),
        ("PAYMENT_PROVIDER_ERROR", "phone_operator_mismatch"),
        ("BAD_DATA", "currency_not_supported"),
        ("SOMETHING_ELSE", "something_else"),
    ],
)
def test_error_codes_become_clear_merchant_errors(code: str, ours: str) -> None:
    result = transformers.rejection(400, {"success": False, "errors": [{"code": code}]})
    assert result.status == "failed" and result.failure_code == ours
    assert result.failure_message


def test_paid_invoice_is_success_and_new_one_is_no_news_until_expiry() -> None:
    invoice = {"invoiceNumber": "8801", "paymentStatus": "PAID", "paymentReference": "MP1"}
    paid = transformers.invoice_result(invoice, NOW)
    assert paid.status == "completed" and paid.psp_reference == "8801"
    fresh = {"paymentStatus": "NEW", "expiryAt": (NOW + timedelta(minutes=5)).isoformat()}
    assert transformers.invoice_result(fresh, NOW).status is None
    lapsed = transformers.invoice_result(fresh, NOW + timedelta(minutes=7))
    assert lapsed.status == "failed" and lapsed.failure_code == "customer_timeout"


@pytest.mark.parametrize(
    ("status", "ours", "code"),
    [
        ("successful", "completed", None),
        ("completed", "completed", None),
        ("failed", "failed", "insufficient_funds"),
        ("error", "failed", "insufficient_funds"),
        ("cancelled", "cancelled", "cancelled"),
        ("timeout", "failed", "customer_timeout"),
        ("pending", "processing", None),
        ("processing", "processing", None),
        ("mystery", None, None),
    ],
)
def test_every_seed_status_is_mapped(status: str, ours: str | None, code: str | None) -> None:
    result = transformers.notified_result(status, "INSUFFICIENT_FUNDS")
    assert result.status == ours and result.failure_code == code


def _docs_header(body: bytes, timestamp_ms: int) -> dict[str, str]:
    signed = str(timestamp_ms).encode() + b"#" + body
    digest = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    return {"irembopay-signature": f"t={timestamp_ms}, s={digest}"}


def test_docs_form_signature_verifies_within_tolerance() -> None:
    body = b'{"success":true,"data":{}}'
    now = 1_780_000_000.0
    webhooks.verify_signature(SECRET, _docs_header(body, int(now * 1000)), body, now=now)
    with pytest.raises(InvalidSignature, match="tolerance"):
        webhooks.verify_signature(
            SECRET, _docs_header(body, int((now - 600) * 1000)), body, now=now
        )


def test_seed_form_signature_verifies() -> None:
    body = b'{"status":"successful"}'
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    webhooks.verify_signature(SECRET, {"X-IremboPay-Signature": f"sha256={digest}"}, body)
    with pytest.raises(InvalidSignature):
        webhooks.verify_signature(SECRET, {"X-IremboPay-Signature": f"sha256={digest}"}, b"{}")


def test_unsigned_notification_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        webhooks.verify_signature(SECRET, {}, b"{}")


def test_paid_notification_completes_our_payment() -> None:
    payment_id = uuid.uuid4()
    body = {
        "success": True,
        "data": {
            "invoiceNumber": "8802",
            "transactionId": str(payment_id),
            "paymentStatus": "PAID",
            "paymentReference": "MP2",
        },
    }
    event = webhooks.parse_event(json.dumps(body).encode())
    assert event.payment_id == payment_id and event.psp_reference == "8802"
    assert event.result is not None and event.result.status == "completed"
    assert event.event_id == "invoice:8802:PAID:MP2"


def test_seed_form_failure_names_our_payment_through_its_metadata() -> None:
    payment_id = uuid.uuid4()
    body = {
        "transaction_id": "IREMBO_TXN_1",
        "reference": "INV_1",
        "status": "failed",
        "failure_reason": "INSUFFICIENT_FUNDS",
        "metadata": {"internal_reference": str(payment_id)},
    }
    event = webhooks.parse_event(json.dumps(body).encode())
    assert event.payment_id == payment_id
    assert event.result is not None and event.result.failure_code == "insufficient_funds"
    assert replace(event.result, data={}).failure_message == (
        "The customer's balance is insufficient."
    )


@pytest.mark.parametrize(
    ("status", "ours"),
    [
        ("PAID", "completed"),
        ("SUCCESSFUL", "completed"),
        ("FAILED", "failed"),
        ("ERROR", "failed"),
        ("CANCELLED", "cancelled"),
        ("TIMEOUT", "failed"),
        ("EXPIRED", "failed"),
        ("PROCESSING", "processing"),
    ],
)
def test_every_named_invoice_status_maps(status: str, ours: str) -> None:
    invoice = {"invoiceNumber": "880000000001", "paymentStatus": status}
    result = transformers.invoice_result(invoice, NOW)
    assert result.status == ours
    assert result.data[transformers.INVOICE_NUMBER] == "880000000001"


def test_an_unmodelled_invoice_status_is_no_news() -> None:
    result = transformers.invoice_result({"invoiceNumber": "1", "paymentStatus": "ON_HOLD"}, NOW)
    assert result.status is None


def test_the_apis_first_and_last_name_and_email_reach_the_psps() -> None:
    from provider_connectors.connectors.novasend import transformers as novasend
    from provider_connectors.connectors.stripe import transformers as stripe

    customer = {"phone": "+250788123456", "first_name": "Aline", "last_name": "Uwase"}
    attempt = replace(_attempt(), data={"customer": {**customer, "email": "aline@example.rw"}})
    invoice = transformers.invoice_request(attempt, "TST-RWF", "PC-1", "EN", NOW)
    assert invoice["customer"]["name"] == "Aline Uwase"
    assert invoice["customer"]["email"] == "aline@example.rw"
    assert novasend.session_request(attempt, "acc")["customerName"] == "Aline Uwase"
    params = stripe.session_params(attempt, "https://s", "https://c")
    assert params["customer_email"] == "aline@example.rw"
