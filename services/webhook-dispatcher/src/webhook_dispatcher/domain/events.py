"""The seed's `WebhookEvent` body, built once per domain event.

The bytes are stored and re-sent as they are on every retry and replay: the merchant's
signature check runs on the raw body, and the event `id` (the domain event's message id)
is what the merchant deduplicates on.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import orjson

from fluxpay_common.messages import API_VERSION, PaymentEvent, RefundEvent

WebhookSource: TypeAlias = PaymentEvent | RefundEvent


def event_id(message: WebhookSource) -> str:
    return str(message.message_id)


def event_document(message: WebhookSource) -> dict[str, Any]:
    data: dict[str, Any] = {"object": message.payment.model_dump(mode="json")}
    if isinstance(message, RefundEvent):
        data["refund"] = message.refund.model_dump(mode="json")
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
