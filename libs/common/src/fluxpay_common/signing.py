"""Merchant webhook signature: `X-FluxPay-Signature: t={unix},v1={hex}`.

v1 is the hex HMAC-SHA256 of `{t}.{raw_body}` keyed with the merchant's webhook secret.
During a secret rotation the header carries one `v1=` entry per valid secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

SIGNATURE_HEADER = "X-FluxPay-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def compute_v1(secret: str, timestamp: int, raw_body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + raw_body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secrets: Iterable[str], timestamp: int, raw_body: bytes) -> str:
    entries = [f"v1={compute_v1(s, timestamp, raw_body)}" for s in secrets]
    return ",".join([f"t={timestamp}", *entries])


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


def verify(
    secret: str,
    header: str,
    raw_body: bytes,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when one v1 entry matches and the timestamp is within tolerance (replay guard)."""
    timestamp, signatures = parse_header(header)
    if timestamp is None or not signatures:
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    expected = compute_v1(secret, timestamp, raw_body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
