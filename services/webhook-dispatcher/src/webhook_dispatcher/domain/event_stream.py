"""The live event stream's items (`fluxpay listen`): an event's stored bytes and a
signature made now, exactly as a webhook delivery would carry them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# A stream relays what a developer's test integration does; live events never leave
# through it (they go only to the merchant's registered endpoint).
STREAM_ENVIRONMENT = "test"
MAX_STREAM_PAGE = 100


@dataclass(frozen=True)
class StreamedEvent:
    id: str
    type: str
    body: bytes
    created_at: datetime


def stream_item(event: StreamedEvent, signature: str) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "created_at": event.created_at.isoformat(),
        # The exact bytes the signature covers (the bodies are UTF-8 JSON).
        "body": event.body.decode(),
        "signature": signature,
    }


def stream_page(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": items, "has_more": has_more}
