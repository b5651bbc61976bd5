"""Novasend: the status map (transaction.status is the truth) and webhook signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import pytest

from provider_connectors.connectors.base import InvalidSignature
from provider_connectors.connectors.novasend import transformers, webhooks

SECRET = "whsec-test"


def _session(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "type": "payin",
        "fee": 6,
        "reference": "tr_fhchi842jyimwiugjgszcxvb8n",
        "amount": 300,
        "chargedAmount": 306,
        "status": "processing",
        "currency": "XOF",
        "confirmationRequired": False,
        "confirmationStatus": "none",
        "paymentUrl": None,
    }
    body.update(changes)
    return body


def test_new_session_is_processing_with_its_reference() -> None:
    result = transformers.payin_result(_session())
    assert result.status == "processing"
    assert result.psp_reference == "tr_fhchi842jyimwiugjgszcxvb8n"
    assert result.checkout_url is None


def test_session_needing_link_confirmation_awaits_payment_with_the_url() -> None:
    url = "https://link.novasend.app/link/abc"
    result = transformers.payin_result(_session(confirmationRequired=True, paymentUrl=url))
    assert result.status == "awaiting_payment" and result.checkout_url == url


def test_processed_alone_is_not_success() -> None:
    result = transformers.payin_result(_session(status="processed", confirmationStatus="accepted"))
    assert result.status == "processing"


def test_completed_transaction_is_success_with_its_fees() -> None:
    body = _session(
        status="processed",
        transaction={
            "reference": "tr_dkjd5ljficphlqmt",
            "status": "completed",
            "fees": "6.00",
            "chargedAmount": "306.00",
        },
    )
    result = transformers.payin_result(body)
    assert result.status == "completed"
    assert (result.fee_minor, result.charged_amount_minor) == (600, 30600)
    assert result.data["novasend_transaction_reference"] == "tr_dkjd5ljficphlqmt"


def test_failed_transaction_fails_with_the_psp_code() -> None:
    body = _session(
        status="processed",
        transaction={"status": "failed"},
        failure={"code": "INSUFFICIENT_FUNDS", "message": "Balance too low"},
    )
    result = transformers.payin_result(body)
    assert result.status == "failed"
    assert result.failure_code == "insufficient_funds"
    assert result.failure_message == "Balance too low"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"confirmationStatus": "declined"}, "customer_declined"),
        ({"confirmationStatus": "expired"}, "customer_timeout"),
        ({"status": "expired"}, "customer_timeout"),
    ],
)
def test_customer_decline_or_timeout_fails(changes: dict[str, object], code: str) -> None:
    result = transformers.payin_result(_session(**changes))
    assert result.status == "failed" and result.failure_code == code


def test_unknown_status_is_no_news() -> None:
    assert transformers.payin_result(_session(status="on_hold")).status is None


def test_rejection_keeps_the_psp_message() -> None:
    result = transformers.rejection(400, {"message": ["msisdn must be E.164"], "code": "BAD"})
    assert result.status == "failed" and result.failure_code == "bad"
    assert result.failure_message == "msisdn must be E.164"


def test_payout_settles_from_processed_and_accepted() -> None:
    done = transformers.payout_result(
        {"id": "pr_1", "status": "processed", "confirmationStatus": "accepted"}
    )
    assert done.status == "completed" and done.psp_reference == "pr_1"
    assert transformers.payout_result({"status": "processing"}).status == "pending"
    refused = transformers.payout_result({"status": "failed", "failure": {"code": "NOPE"}})
    assert refused.status == "failed" and refused.failure_code == "nope"


def _sign(body: bytes) -> dict[str, str]:
    return {"x-signature-value": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}


def test_signature_over_the_raw_body_verifies() -> None:
    body = b'{"id":"tr_1","status":"completed"}'
    webhooks.verify_signature(SECRET, _sign(body), body)


def test_signature_over_json_stringify_form_verifies() -> None:
    pretty = json.dumps({"id": "tr_1", "status": "completed"}, indent=2).encode()
    compact = b'{"id":"tr_1","status":"completed"}'
    webhooks.verify_signature(SECRET, _sign(compact), pretty)


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Signature-Value": "0" * 64}, {"X-Signature-Value": "not-hex"}],
)
def test_missing_or_wrong_signature_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidSignature):
        webhooks.verify_signature(SECRET, headers, b'{"id":"tr_1"}')


def test_tampered_body_is_refused() -> None:
    body = b'{"id":"tr_1","amount":300}'
    with pytest.raises(InvalidSignature):
        webhooks.verify_signature(SECRET, _sign(body), body.replace(b"300", b"3"))


def test_payin_notification_names_our_payment_and_asks_for_a_recheck() -> None:
    payment_id = uuid.uuid4()
    event = webhooks.parse_event(
        json.dumps(
            {"id": "tr_9", "type": "payin", "status": "completed", "reference": str(payment_id)}
        ).encode()
    )
    assert event.payment_id == payment_id and event.psp_reference == "tr_9"
    assert event.recheck and event.event_id == "tr_9:completed:None"


def test_payout_notification_settles_the_refund() -> None:
    refund_id = uuid.uuid4()
    event = webhooks.parse_event(
        json.dumps(
            {
                "id": "pr_9",
                "type": "payout",
                "status": "processed",
                "confirmationStatus": "accepted",
                "reference": str(refund_id),
            }
        ).encode()
    )
    assert event.refund_id == refund_id
    assert event.refund_result is not None and event.refund_result.status == "completed"
