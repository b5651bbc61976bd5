"""MTN MoMo callbacks: sent once, unsigned, never retried.

We make them verifiable ourselves: the `X-Callback-Url` we give MTN carries
`?payment=<our payment id>&token=<hex HMAC-SHA256(callback secret, payment id)>`. A
callback with a wrong token is refused (401). A good one is still only a hint: the engine
re-checks `GET /requesttopay/{id}` before anything changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from urllib.parse import urlencode

import orjson

from fluxpay_common.ids import parse_uuid
from provider_connectors.connectors.base import InvalidSignature
from provider_connectors.connectors.mtn_momo.transformers import refund_result
from provider_connectors.connectors.payloads import text
from provider_connectors.connectors.signatures import hmac_sha256_hex, matches_any
from provider_connectors.domain.model import CallbackEvent


def callback_token(secret: str, subject: uuid.UUID) -> str:
    return hmac_sha256_hex(secret, f"mtn_momo:{subject}".encode())


def callback_url(base: str, secret: str, subject: uuid.UUID, kind: str = "payment") -> str:
    separator = "&" if "?" in base else "?"
    query = urlencode({kind: str(subject), "token": callback_token(secret, subject)})
    return f"{base}{separator}{query}"


def parse_event(secret: str, body: bytes, query: Mapping[str, str]) -> CallbackEvent:
    kind = "refund" if "refund" in query else "payment"
    subject = parse_uuid(query.get(kind, ""))
    token = query.get("token", "")
    if subject is None or not token:
        raise InvalidSignature("callback URL token missing")
    if not matches_any([callback_token(secret, subject)], token):
        raise InvalidSignature("callback URL token mismatch")
    payload = orjson.loads(body) if body.strip() else {}
    if not isinstance(payload, dict):
        raise ValueError("an MTN callback is a JSON object")
    status = (text(payload, "status") or "UNKNOWN").upper()
    event_id = f"{kind}:{subject}:{status}:{text(payload, 'financialTransactionId') or ''}"
    if kind == "refund":
        return CallbackEvent(
            event_id=event_id,
            event_type=f"refund.{status.lower()}",
            refund_id=subject,
            refund_result=refund_result(payload),
            recheck=True,
        )
    return CallbackEvent(
        event_id=event_id,
        event_type=f"requesttopay.{status.lower()}",
        payment_id=subject,
        recheck=True,
    )
