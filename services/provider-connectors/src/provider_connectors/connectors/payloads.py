"""Reading ids and statuses out of a PSP's JSON notification, refusing wrong shapes.

`str(value)` would turn an object into a plausible-looking id; a notification whose id or
status is not text is malformed instead (`ValueError`: 400, no effect).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def text(payload: Mapping[str, Any], key: str) -> str | None:
    """The field as text (a JSON number counts: some PSPs send numeric ids), or None."""
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"`{key}` is not text")
    return str(value)
