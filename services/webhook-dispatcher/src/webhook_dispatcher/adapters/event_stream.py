"""SQL of the event stream: a merchant's events created since a time, oldest first."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from webhook_dispatcher.domain.event_stream import StreamedEvent


async def events_since(
    pool: asyncpg.Pool,
    merchant_id: uuid.UUID,
    environment: str,
    since: datetime,
    limit: int,
) -> list[StreamedEvent]:
    rows = await pool.fetch(
        "SELECT id, type, body, created_at FROM event"
        " WHERE merchant_id = $1 AND environment = $2 AND created_at >= $3"
        " ORDER BY created_at, id LIMIT $4",
        merchant_id,
        environment,
        since,
        limit,
    )
    return [StreamedEvent(r["id"], r["type"], bytes(r["body"]), r["created_at"]) for r in rows]
