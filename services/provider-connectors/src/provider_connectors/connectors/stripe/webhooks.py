"""Stripe webhooks: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "{t}.{raw body}">`
(several `v1` during a secret roll), 300 s tolerance — the scheme FluxPay's own merchant
webhooks use, so `fluxpay_common.signing.verify` checks it.

Events can arrive out of order, so a payment or refund event only says *which* object
changed: the engine reads the object back from Stripe before anything changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from fluxpay_common import signing
from fluxpay_common.ids import parse_uuid
from provider_connectors.connectors.base import InvalidSignature
from provider_connectors.connectors.payloads import text
from provider_connectors.connectors.signatures import header
from provider_connectors.domain.model import CallbackEvent

SIGNATURE_HEADER = "Stripe-Signature"
SESSION_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.expired",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
    }
)
# `payment_intent.failed` is the seed's name; Stripe's is `payment_intent.payment_failed`.
INTENT_EVENTS = frozenset(
    {"payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.failed"}
)
REFUND_EVENTS = frozenset(
    {"charge.refunded", "charge.refund.updated", "refund.updated", "refund.failed"}
)


def verify_signature(
    secret: str, headers: Mapping[str, str], body: bytes, tolerance: int, now: float | None = None
) -> None:
    given = header(headers, SIGNATURE_HEADER)
    if not given:
        raise InvalidSignature(f"missing {SIGNATURE_HEADER}")
    if not signing.verify(secret, given, body, tolerance=tolerance, now=now):
        raise InvalidSignature("signature mismatch or timestamp outside tolerance")


def parse_event(body: bytes) -> CallbackEvent:
    event = orjson.loads(body)
    if not isinstance(event, dict) or event.get("object") != "event":
        raise ValueError("a Stripe webhook is an event object")
    kind = text(event, "type") or ""
    obj = _mapping(_mapping(event.get("data")).get("object"))
    event_id = text(event, "id") or ""
    metadata = _mapping(obj.get("metadata"))
    if kind in SESSION_EVENTS:
        ours = parse_uuid(str(obj.get("client_reference_id") or metadata.get("payment_id") or ""))
        return CallbackEvent(
            event_id, kind, payment_id=ours, psp_reference=text(obj, "id"), recheck=True
        )
    if kind in INTENT_EVENTS:
        ours = parse_uuid(str(metadata.get("payment_id") or ""))
        return CallbackEvent(event_id, kind, payment_id=ours, recheck=True)
    if kind in REFUND_EVENTS:
        refund = _refund_of(obj)
        refund_meta = _mapping(refund.get("metadata"))
        return CallbackEvent(
            event_id,
            kind,
            refund_id=parse_uuid(str(refund_meta.get("refund_id") or "")),
            refund_psp_reference=text(refund, "id"),
            recheck=True,
        )
    return CallbackEvent(event_id, kind)  # not ours to act on: acknowledged, ignored


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _refund_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """A refund event carries the refund; `charge.refunded` carries the charge with its
    refunds, newest first."""
    if obj.get("object") == "refund":
        return obj
    refunds = obj.get("refunds")
    items = refunds.get("data") if isinstance(refunds, dict) else None
    return items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}
