"""The seed's `WebhookEvent` body, built once per domain event.

The bytes are stored and re-sent as they are on every retry and replay: the merchant's
signature check runs on the raw body, and the event `id` (the domain event's message id)
is what the merchant deduplicates on.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeAlias

import orjson

from fluxpay_common.messages import (
    API_VERSION,
    DueEvent,
    Environment,
    NextAction,
    PaymentEvent,
    PaymentView,
    RefundEvent,
)

WebhookSource: TypeAlias = PaymentEvent | RefundEvent | DueEvent
# The merchant's "send a test event": a completed payment no one made, marked `test`.
SAMPLE_PAYMENT_ID = uuid.UUID(int=0)
SAMPLE_REFERENCE = "test_webhook"


def event_id(message: WebhookSource) -> str:
    return str(message.message_id)


def event_document(message: WebhookSource) -> dict[str, Any]:
    data: dict[str, Any] = {"object": message.payment.model_dump(mode="json")}
    if isinstance(message, RefundEvent):
        data["refund"] = message.refund.model_dump(mode="json")
    if isinstance(message, DueEvent):
        data["due"] = message.due
    return {
        "id": event_id(message),
        "object": "event",
        "api_version": API_VERSION,
        "type": message.type,
        "created": int(message.occurred_at.timestamp()),
        "environment": message.environment,
        "merchant_id": str(message.merchant_id),
        "data": data,
    }


def event_body(message: WebhookSource) -> bytes:
    return orjson.dumps(event_document(message))


def sample_event(
    merchant_id: uuid.UUID, environment: Environment, event_id: uuid.UUID, now: datetime
) -> PaymentEvent:
    """A `collect.payment.completed` of a fake payment (all-zero id, reference test_webhook)."""
    payment = PaymentView(
        id=SAMPLE_PAYMENT_ID,
        reference=SAMPLE_REFERENCE,
        status="completed",
        amount=1000,
        amount_minor=100000,
        currency="XOF",
        country="BJ",
        mode="direct",
        operator="mtn",
        next_action=NextAction(type="none"),
        environment=environment,
        created_at=now,
        completed_at=now,
        description="FluxPay test webhook",
    )
    return PaymentEvent(
        message_id=event_id,
        type="collect.payment.completed",
        merchant_id=merchant_id,
        environment=environment,
        payment=payment,
        occurred_at=now,
    )


def sample_event_body(message: PaymentEvent) -> bytes:
    """The usual body with a top-level `"test": true`, so a merchant's code can tell."""
    return orjson.dumps({**event_document(message), "test": True})
