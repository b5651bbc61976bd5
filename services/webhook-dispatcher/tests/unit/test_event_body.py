import uuid
from datetime import UTC, datetime

import orjson

from fluxpay_common.messages import PaymentEvent, PaymentView, RefundEvent, RefundView
from webhook_dispatcher.domain.events import event_body, sample_event, sample_event_body

OCCURRED = datetime(2026, 6, 1, 12, 0, 5, 900000, tzinfo=UTC)


def _payment(status: str = "completed") -> PaymentView:
    return PaymentView.model_validate(
        {
            "id": uuid.uuid4(),
            "reference": "order-1001",
            "status": status,
            "amount": 3000,
            "amount_minor": 300000,
            "currency": "XOF",
            "country": "BJ",
            "mode": "direct",
            "operator": "mtn",
            "next_action": {"type": "none"},
            "environment": "live",
            "created_at": OCCURRED,
        }
    )


def _payment_event() -> PaymentEvent:
    return PaymentEvent(
        type="collect.payment.completed",
        merchant_id=uuid.uuid4(),
        environment="live",
        payment=_payment(),
        occurred_at=OCCURRED,
    )


def test_payment_event_body_is_the_seed_webhook_event() -> None:
    message = _payment_event()
    body = orjson.loads(event_body(message))
    assert body == {
        "id": str(message.message_id),
        "object": "event",
        "api_version": "2026-06",
        "type": "collect.payment.completed",
        "created": 1780315205,
        "environment": "live",
        "merchant_id": str(message.merchant_id),
        "data": {"object": message.payment.model_dump(mode="json")},
    }
    assert body["data"]["object"]["object"] == "collect.payment"
    assert body["data"]["object"]["amount_minor"] == 300000


def test_body_bytes_are_identical_each_time_they_are_built() -> None:
    message = _payment_event()
    assert event_body(message) == event_body(message)


def test_refund_event_carries_the_refund_beside_the_payment() -> None:
    payment = _payment("refunded")
    refund = RefundView(
        id=uuid.uuid4(),
        payment_id=payment.id,
        reference="refund-1",
        status="completed",
        amount=3000,
        currency="XOF",
    )
    message = RefundEvent(
        type="collect.refund.completed",
        merchant_id=uuid.uuid4(),
        environment="test",
        payment=payment,
        refund=refund,
    )
    body = orjson.loads(event_body(message))
    assert body["type"] == "collect.refund.completed"
    assert body["data"]["object"]["id"] == str(payment.id)
    assert body["data"]["refund"] == refund.model_dump(mode="json")


def test_sample_event_is_a_marked_completed_payment_of_nobody() -> None:
    merchant_id, event_id = uuid.uuid4(), uuid.uuid4()
    message = sample_event(merchant_id, "test", event_id, OCCURRED)
    body = orjson.loads(sample_event_body(message))
    assert body["test"] is True
    assert body["id"] == str(event_id) and body["type"] == "collect.payment.completed"
    assert body["environment"] == "test" and body["merchant_id"] == str(merchant_id)
    payment = PaymentView.model_validate(body["data"]["object"])
    assert payment.id == uuid.UUID(int=0) and payment.reference == "test_webhook"
    assert payment.status == "completed" and payment.amount_minor == payment.amount * 100
    assert set(body) - {"test"} == set(orjson.loads(event_body(message))), "same shape"
