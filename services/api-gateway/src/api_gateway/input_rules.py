"""What the gateway refuses before any route sees a request. Pure: raw input in, a refusal out.

Every string a merchant sends ends in PostgreSQL (which refuses NUL), in messages, webhooks
and logs; every number in a bigint or a JSON document signed for a webhook. So the edge
refuses, once for every endpoint and every field (including metadata and unknown fields):
NUL and other control characters, text that is not valid Unicode (invalid UTF-8, lone
surrogates), numbers no service can hold, nesting no merchant needs, oversized metadata.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

# C0 controls but tab, newline and carriage return (free text may hold them), DEL, and the
# surrogates: a lone one is not a character, and invalid UTF-8 decodes to them below.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# A JSON string (with its escapes), or a structural character: enough to follow nesting.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]', re.DOTALL)
INT64 = 2**63
# A longer number literal is no amount, count or id of ours (a 5,000-digit number is abuse).
MAX_NUMBER_CHARS = 40
MAX_PARAM_CHARS = 100


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 64 * 1024
    max_depth: int = 20
    metadata_max_keys: int = 50
    metadata_key_length: int = 40
    metadata_value_length: int = 500


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str
    param: str | None = None


class _BadNumber:
    """Stands for a number literal the platform refuses, so the refusal can name its field."""

    def __init__(self, text: str) -> None:
        self.text = text


def has_forbidden_characters(text: str) -> bool:
    return _FORBIDDEN.search(text) is not None


def shown(text: str) -> str:
    """A merchant's text made safe to echo in an error: forbidden characters as U+FFFD."""
    return _FORBIDDEN.sub("\ufffd", text)[:MAX_PARAM_CHARS]


def _join(path: str | None, key: object) -> str:
    return str(key) if path is None else f"{path}.{key}"


def invalid_characters(param: str) -> Refusal:
    return Refusal(
        400,
        "invalid_characters",
        f"'{shown(param)}' contains a NUL or control character, or text that is not valid"
        " UTF-8; remove it.",
        shown(param),
    )


def request_too_large(limit: int) -> Refusal:
    return Refusal(
        413, "request_too_large", f"The request body is larger than {limit} bytes; send less."
    )


def check_query(pairs: list[tuple[str, str]]) -> Refusal | None:
    for name, value in pairs:
        if has_forbidden_characters(name) or has_forbidden_characters(value):
            return invalid_characters(name)
    return None


def check_json_body(raw: bytes, limits: Limits) -> Refusal | None:
    """None when `raw` is a JSON document the platform can hold; else why it cannot."""
    # Invalid UTF-8 inside a string becomes lone surrogates, refused with the field's name.
    text = raw.decode("utf-8", errors="surrogateescape")
    brackets = text.count("{") + text.count("[")
    if brackets > limits.max_depth and (deep := _too_deep_at(text, limits.max_depth)):
        return deep
    try:
        document = json.loads(
            text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_BadNumber
        )
    except (ValueError, RecursionError):
        return Refusal(400, "invalid_json", "The request body is not valid JSON (UTF-8).")
    return _walk(document, None) or _check_metadata(document, limits)


def _parse_int(text: str) -> int | _BadNumber:
    if len(text) > MAX_NUMBER_CHARS:
        return _BadNumber(text)
    value = int(text)
    return value if -INT64 <= value < INT64 else _BadNumber(text)


def _parse_float(text: str) -> float | _BadNumber:
    value = float(text)
    return value if len(text) <= MAX_NUMBER_CHARS and math.isfinite(value) else _BadNumber(text)


def _walk(value: Any, path: str | None) -> Refusal | None:
    if isinstance(value, str):
        return invalid_characters(path or "body") if has_forbidden_characters(value) else None
    if isinstance(value, _BadNumber):
        return Refusal(
            400,
            "number_out_of_range",
            f"'{shown(path or 'body')}' is not a number FluxPay accepts: at most"
            f" {MAX_NUMBER_CHARS} characters, finite, integers within 64 bits.",
            shown(path or "body"),
        )
    items: Any = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    for key, item in items:
        child = _join(path, key)
        if isinstance(key, str) and has_forbidden_characters(key):
            return invalid_characters(child)
        if (refusal := _walk(item, child)) is not None:
            return refusal
    return None


def _too_deep_at(text: str, max_depth: int) -> Refusal | None:
    """Where objects and arrays nest deeper than `max_depth`, found without recursion (a
    recursive parser would overflow its stack on a deep enough document)."""
    # One [kind, step] per open container; step is the key or index being read inside it.
    open_containers: list[list[str]] = []
    last_string = ""
    for match in _TOKEN.finditer(text):
        token = match.group()
        top = open_containers[-1] if open_containers else None
        if token in ("{", "["):
            if len(open_containers) >= max_depth:
                return _nesting_too_deep(".".join(c[1] for c in open_containers), max_depth)
            open_containers.append([token, "0" if token == "[" else ""])
        elif token in ("}", "]"):
            if open_containers:
                open_containers.pop()
        elif top is not None and token == ",":
            top[1] = str(int(top[1]) + 1) if top[0] == "[" else ""
        elif top is not None and token == ":" and top[0] == "{":
            top[1] = _decoded(last_string)
        else:
            last_string = token
    return None


def _decoded(token: str) -> str:
    try:
        return str(json.loads(token))
    except ValueError:
        return "?"


def _nesting_too_deep(param: str, max_depth: int) -> Refusal:
    where = shown(param.strip(".")) or "body"
    return Refusal(
        400,
        "nesting_too_deep",
        f"'{where}' nests objects and arrays more than {max_depth} levels deep.",
        where,
    )


def _check_metadata(document: Any, limits: Limits) -> Refusal | None:
    """Stripe's metadata bounds: 50 keys, keys up to 40 characters, values up to 500."""
    metadata = document.get("metadata") if isinstance(document, dict) else None
    if not isinstance(metadata, dict):
        return None
    if len(metadata) > limits.metadata_max_keys:
        return Refusal(
            400,
            "parameter_invalid",
            f"'metadata' has {len(metadata)} keys; at most {limits.metadata_max_keys}.",
            "metadata",
        )
    for key, value in metadata.items():
        param = shown(f"metadata.{key}")
        if not 1 <= len(key) <= limits.metadata_key_length:
            return Refusal(
                400,
                "parameter_invalid",
                f"Metadata keys are 1 to {limits.metadata_key_length} characters long.",
                param,
            )
        size = len(value) if isinstance(value, str) else len(json.dumps(value, ensure_ascii=False))
        if size > limits.metadata_value_length:
            return Refusal(
                400,
                "parameter_invalid",
                f"'{param}' is {size} characters long; at most {limits.metadata_value_length}.",
                param,
            )
    return None
