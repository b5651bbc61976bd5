"""Whether a verified PSP notification is well formed enough to act on (pure).

A signed callback can still be malformed: a NUL in an id (PostgreSQL refuses such text),
an object where a string belongs, an id of a megabyte. It is refused with a 400 and no
effect (never recorded as seen): a PSP that retries a poison gets the same clear answer,
not a 500 that looks like our outage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any

from provider_connectors.domain.model import CallbackEvent

MAX_ID_LENGTH = 255
_IDS = ("event_id", "event_type")
_OPTIONAL_IDS = ("psp_reference", "reference", "refund_psp_reference")
_RESULT_TEXTS = ("psp_reference", "failure_code", "failure_message", "checkout_url")


def shape_problem(event: CallbackEvent) -> str | None:
    """A short reason the event cannot be used, or None when it is well formed."""
    for name in _IDS + _OPTIONAL_IDS:
        value = getattr(event, name)
        if value is None and name in _OPTIONAL_IDS:
            continue
        if not isinstance(value, str) or not value:
            return f"{name} is not a string"
        if len(value) > MAX_ID_LENGTH:
            return f"{name} is too long"
        if "\x00" in value:
            return f"{name} holds a NUL character"
    for name, value in (("result", event.result), ("refund_result", event.refund_result)):
        if value is None:
            continue
        if _holds_nul(value):
            return f"{name} holds a NUL character"
        if any(_not_text(getattr(value, field, None)) for field in _RESULT_TEXTS):
            return f"{name} has an object where text belongs"
    return None


def _not_text(value: Any) -> bool:
    return value is not None and not isinstance(value, str)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return any(_holds_nul(getattr(value, f.name)) for f in fields(value))
    return False
