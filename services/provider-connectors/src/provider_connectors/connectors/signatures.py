"""HMAC helpers shared by the PSP callback verifiers (constant-time comparisons only)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

import orjson


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name (PSPs and proxies disagree on case)."""
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def hmac_sha256_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def matches_any(expected: Iterable[str], given: str) -> bool:
    given = given.strip().lower()
    return any(hmac.compare_digest(candidate, given) for candidate in expected)


def compact_json(body: bytes) -> bytes | None:
    """The body as JavaScript's `JSON.stringify(JSON.parse(body))` would write it, for PSPs
    whose documented signature is computed over re-serialized JSON rather than raw bytes."""
    try:
        return orjson.dumps(orjson.loads(body))
    except orjson.JSONDecodeError:
        return None
