"""Novasend notifications: `X-Signature-Value: hex HMAC-SHA256(body, webhook secret)`.

The body is the transaction object (optionally wrapped as `{"event", "data"}` with
`payin.confirmed` / `payin.declined`). A payin notification is a hint: the engine confirms
it with `GET /v1/payin/{reference}`, whose `transaction.status` is the truth.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from fluxpay_common.ids import parse_uuid
from provider_connectors.connectors.base import InvalidSignature
from provider_connectors.connectors.novasend.transformers import payout_result
from provider_connectors.connectors.payloads import text
from provider_connectors.connectors.signatures import (
    compact_json,
    header,
    hmac_sha256_hex,
    matches_any,
)
from provider_connectors.domain.model import CallbackEvent

SIGNATURE_HEADER = "X-Signature-Value"


def verify_signature(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    given = header(headers, SIGNATURE_HEADER)
    if not given:
        raise InvalidSignature(f"missing {SIGNATURE_HEADER}")
    signed = [body] + [c for c in (compact_json(body),) if c is not None and c != body]
    if not matches_any((hmac_sha256_hex(secret, s) for s in signed), given):
        raise InvalidSignature("signature mismatch")


def parse_event(body: bytes) -> CallbackEvent:
    payload = orjson.loads(body)
    if not isinstance(payload, dict):
        raise ValueError("a Novasend notification is a JSON object")
    wrapped = payload.get("data")
    data: Mapping[str, Any] = wrapped if isinstance(wrapped, dict) else payload
    kind = text(data, "type") or "payin"
    event_type = text(payload, "event") or f"{kind}.{text(data, 'status')}"
    event_id = _event_id(payload, data, body)
    ours = parse_uuid(text(data, "reference") or text(data, "customerReference") or "")
    if kind == "payout":
        return CallbackEvent(
            event_id=event_id,
            event_type=event_type,
            refund_id=ours,
            refund_psp_reference=text(data, "id"),
            refund_result=payout_result(data),
        )
    return CallbackEvent(
        event_id=event_id,
        event_type=event_type,
        payment_id=ours,
        psp_reference=text(data, "id"),
        recheck=True,
    )


def _event_id(payload: Mapping[str, Any], data: Mapping[str, Any], body: bytes) -> str:
    """Novasend sends no event id: the transaction and the state it announces name one."""
    if payload.get("id") and payload is not data:
        return str(text(payload, "id"))
    state = (text(data, "id"), text(data, "status"), text(data, "confirmationStatus"))
    if state[0]:
        return ":".join(str(part) for part in state)
    return "sha256:" + hashlib.sha256(body).hexdigest()
