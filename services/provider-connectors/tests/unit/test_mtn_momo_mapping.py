"""MTN MoMo: the requesttopay status map, request bodies and the callback URL token."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from provider_connectors.connectors.base import InvalidSignature
from provider_connectors.connectors.mtn_momo import transformers, webhooks
from provider_connectors.domain.model import Attempt

SECRET = "callback-secret"
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _attempt() -> Attempt:
    return Attempt(
        payment_id=uuid.uuid4(),
        provider="mtn_momo",
        merchant_id=uuid.uuid4(),
        environment="live",
        reference="order-77",
        amount=5000,
        currency="XOF",
        operator="mtn",
        phone="+229 97 00 00 01",
        psp_reference=None,
        status="pending",
        next_poll_at=None,
        expires_at=None,
        otp_attempts=0,
        created_at=NOW,
        updated_at=NOW,
        data={"reference_id": "11111111-1111-4111-8111-111111111111"},
    )


def test_request_to_pay_speaks_mtn() -> None:
    attempt = _attempt()
    body = transformers.request_to_pay(attempt)
    assert body["amount"] == "5000" and body["currency"] == "XOF"
    assert body["externalId"] == str(attempt.payment_id)
    assert body["payer"] == {"partyIdType": "MSISDN", "partyId": "22997000001"}


def test_refund_names_the_collection_to_refund() -> None:
    body = transformers.refund_request(_attempt(), "r-1", 2000)
    assert body["referenceIdToRefund"] == "11111111-1111-4111-8111-111111111111"
    assert body["amount"] == "2000" and body["externalId"] == "r-1"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"status": "SUCCESSFUL", "financialTransactionId": "99"}, "completed", None),
        ({"status": "PENDING"}, "processing", None),
        ({"status": "FAILED", "reason": "NOT_ENOUGH_FUNDS"}, "failed", "insufficient_funds"),
        ({"status": "FAILED", "reason": "APPROVAL_REJECTED"}, "failed", "customer_declined"),
        ({"status": "FAILED", "reason": {"code": "EXPIRED"}}, "failed", "customer_timeout"),
        ({"status": "FAILED", "reason": "SOMETHING_NEW"}, "failed", "something_new"),
        ({"status": "WEIRD"}, None, None),
    ],
)
def test_collection_status_map(body: dict[str, object], status: str | None, code: str | None):
    result = transformers.collection_result(body)
    assert result.status == status and result.failure_code == code


def test_success_keeps_the_financial_transaction_id() -> None:
    result = transformers.collection_result({"status": "SUCCESSFUL", "financialTransactionId": "9"})
    assert result.data["mtn_financial_transaction_id"] == "9"
    assert result.fee_minor is None  # MTN reports no fees on a collection


def test_callback_with_our_token_asks_for_a_recheck() -> None:
    payment_id = uuid.uuid4()
    url = webhooks.callback_url("https://fx.example/callbacks/mtn_momo", SECRET, payment_id)
    query = dict(pair.split("=", 1) for pair in url.split("?", 1)[1].split("&"))
    event = webhooks.parse_event(SECRET, b'{"status":"SUCCESSFUL"}', query)
    assert event.payment_id == payment_id and event.recheck
    assert event.result is None  # the body alone decides nothing


@pytest.mark.parametrize(
    "query",
    [{}, {"payment": str(uuid.uuid4())}, {"payment": str(uuid.uuid4()), "token": "0" * 64}],
)
def test_callback_without_a_valid_token_is_refused(query: dict[str, str]) -> None:
    with pytest.raises(InvalidSignature):
        webhooks.parse_event(SECRET, b'{"status":"SUCCESSFUL"}', query)


def test_token_of_one_payment_does_not_open_another() -> None:
    token = webhooks.callback_token(SECRET, uuid.uuid4())
    with pytest.raises(InvalidSignature):
        webhooks.parse_event(SECRET, b"{}", {"payment": str(uuid.uuid4()), "token": token})


def test_reference_id_is_a_uuid_v4_mtn_accepts_and_the_same_for_a_retry() -> None:
    refund_id = uuid.uuid5(uuid.uuid4(), "refund:key-1")  # the orchestrator's derived id
    reference = transformers.reference_id(refund_id)
    assert uuid.UUID(reference).version == 4
    assert reference == transformers.reference_id(refund_id)
    v4 = uuid.uuid4()
    assert transformers.reference_id(v4) == str(v4)
