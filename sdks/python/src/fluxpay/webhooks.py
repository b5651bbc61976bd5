"""Verify a FluxPay webhook and read it as a typed `Event`.

FluxPay signs each delivery with `X-FluxPay-Signature: t={unix},v1={hex}[,v1={hex}...]`,
where each `v1` is the hex HMAC-SHA256 of `{t}.{raw_body}` keyed with one of your webhook
secrets (during a secret rotation the header carries one `v1` per valid secret). Verify the
**raw** body, before any JSON parsing, and deduplicate on the event `id`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence

from pydantic import ValidationError

from fluxpay.errors import SignatureVerificationError
from fluxpay.models import Event

SIGNATURE_HEADER = "X-FluxPay-Signature"
EVENT_ID_HEADER = "X-FluxPay-Event-Id"
DEFAULT_TOLERANCE = 300


def construct_event(
    raw_body: bytes | str,
    header: str | None,
    secret: str | Sequence[str],
    tolerance: int = DEFAULT_TOLERANCE,
) -> Event:
    """The verified event, or `SignatureVerificationError`.

    `secret` is your webhook secret, or several (yours during your own rotation): the
    event is accepted when any `v1` of the header matches any of them, compared in
    constant time. A timestamp more than `tolerance` seconds from now is refused, so a
    captured request cannot be replayed later.
    """
    body = raw_body.encode() if isinstance(raw_body, str) else raw_body
    verify_header(body, header, secret, tolerance)
    try:
        return Event.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise SignatureVerificationError(f"The signed body is not a FluxPay event: {exc}") from exc


def verify_header(
    raw_body: bytes,
    header: str | None,
    secret: str | Sequence[str],
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Raise `SignatureVerificationError` unless `header` signs `raw_body` with a secret."""
    if not header:
        raise SignatureVerificationError(f"No {SIGNATURE_HEADER} header.", header)
    timestamp, candidates = parse_header(header)
    if timestamp is None or not candidates:
        raise SignatureVerificationError("Malformed signature header: no t= or no v1=.", header)
    age = (time.time() if now is None else now) - timestamp
    if tolerance > 0 and abs(age) > tolerance:
        raise SignatureVerificationError(
            f"Timestamp outside the tolerance ({int(age)} s old, {tolerance} s allowed).", header
        )
    secrets = [secret] if isinstance(secret, str) else list(secret)
    expected = [compute_signature(s, timestamp, raw_body) for s in secrets]
    # Every pair is compared (no early exit), each in constant time.
    matches = [hmac.compare_digest(e, c) for e in expected for c in candidates]
    if not any(matches):
        raise SignatureVerificationError(
            "No signature matches: wrong secret, or the body was changed (verify the raw"
            " bytes, before parsing).",
            header,
        )


def parse_header(header: str) -> tuple[int | None, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    return timestamp, signatures


def compute_signature(secret: str, timestamp: int, raw_body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + raw_body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def generate_test_header(
    raw_body: bytes | str, secret: str | Sequence[str], timestamp: int | None = None
) -> str:
    """A valid header for `raw_body`, to test your webhook handler without FluxPay."""
    body = raw_body.encode() if isinstance(raw_body, str) else raw_body
    t = int(time.time()) if timestamp is None else timestamp
    secrets = [secret] if isinstance(secret, str) else list(secret)
    return ",".join([f"t={t}", *(f"v1={compute_signature(s, t, body)}" for s in secrets)])
