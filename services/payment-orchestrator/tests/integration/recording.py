"""What the outbox relay hands to the broker, recorded instead of published."""

from __future__ import annotations

import uuid
from typing import Any


class RecordingBroker:
    """Stands for the relay's broker: what it was asked to publish (routing key, id)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, uuid.UUID]] = []

    async def publish(self, body: bytes, **kwargs: Any) -> None:
        self.published.append((kwargs["routing_key"], uuid.UUID(kwargs["message_id"])))
