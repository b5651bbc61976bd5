"""IremboPay notifications, in both forms.

- IremboPay's own (API docs): `irembopay-signature: t=<ms>,s=<hex HMAC-SHA256 of
  "{t}#{raw body}">`, body `{"success", "data": <invoice>}`; a timestamp more than
  5 minutes away is refused (replay);
- the seed's: `X-IremboPay-Signature: sha256=<hex HMAC-SHA256 of the raw body>`, body
  `{"transaction_id", "reference", "status", "failure_reason", "metadata": {...}}`.

Both are keyed with the merchant secret key (or a distinct webhook secret if set).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from fluxpay_common.ids import parse_uuid, utcnow
from provider_connectors.connectors.base import InvalidSignature
from provider_connectors.connectors.irembopay import transformers
from provider_connectors.connectors.payloads import text
from provider_connectors.connectors.signatures import header, hmac_sha256_hex, matches_any
from provider_connectors.domain.model import CallbackEvent

DOCS_HEADER = "irembopay-signature"
SEED_HEADER = "X-IremboPay-Signature"
TOLERANCE_SECONDS = 300


def verify_signature(
    secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> None:
    if (docs := header(headers, DOCS_HEADER)) is not None:
        _verify_docs_form(secret, docs, body, time.time() if now is None else now)
    elif (seed := header(headers, SEED_HEADER)) is not None:
        algorithm, _, signature = seed.partition("=")
        if algorithm.strip().lower() != "sha256" or not signature:
            raise InvalidSignature("unsupported X-IremboPay-Signature")
        if not matches_any([hmac_sha256_hex(secret, body)], signature):
            raise InvalidSignature("signature mismatch")
    else:
        raise InvalidSignature("no IremboPay signature header")


def _verify_docs_form(secret: str, value: str, body: bytes, now: float) -> None:
    parts = dict(p.strip().partition("=")[::2] for p in value.split(","))
    timestamp, signature = parts.get("t", ""), parts.get("s", "")
    if not timestamp.isdigit() or not signature:
        raise InvalidSignature("malformed irembopay-signature")
    if abs(now - int(timestamp) / 1000) > TOLERANCE_SECONDS:
        raise InvalidSignature("irembopay-signature timestamp outside tolerance")
    expected = hmac_sha256_hex(secret, timestamp.encode() + b"#" + body)
    if not matches_any([expected], signature):
        raise InvalidSignature("signature mismatch")


def parse_event(body: bytes) -> CallbackEvent:
    payload = orjson.loads(body)
    if not isinstance(payload, dict):
        raise ValueError("an IremboPay notification is a JSON object")
    if isinstance(payload.get("data"), dict):
        return _invoice_event(payload["data"])
    return _seed_event(payload)


def _invoice_event(invoice: Mapping[str, Any]) -> CallbackEvent:
    status = text(invoice, "paymentStatus") or ("PAID" if invoice.get("paidAt") else "NEW")
    invoice = {**invoice, "paymentStatus": status}
    number = text(invoice, "invoiceNumber")
    return CallbackEvent(
        event_id=f"invoice:{number}:{status}:{text(invoice, 'paymentReference') or ''}",
        event_type=f"invoice.{status.lower()}",
        payment_id=parse_uuid(text(invoice, "transactionId") or ""),
        psp_reference=number,
        result=transformers.invoice_result(invoice, utcnow()),
    )


def _seed_event(payload: Mapping[str, Any]) -> CallbackEvent:
    status = text(payload, "status") or "unknown"
    metadata = payload.get("metadata") if isinstance(payload.get("metadata"), dict) else {}
    ours = text(metadata, "internal_reference") if metadata else None
    return CallbackEvent(
        event_id=f"transaction:{text(payload, 'transaction_id')}:{status.lower()}",
        event_type=f"payment.{status.lower()}",
        payment_id=parse_uuid(ours or ""),
        psp_reference=text(payload, "reference"),
        result=transformers.notified_result(status, payload.get("failure_reason")),
    )
