"""SQL of the merchant's writes: replays of stored events (the caller's transaction).

A replay is a new `pending` delivery of the stored bytes, due now; the caller NOTIFYs the
dispatcher. Replays of one merchant and environment are serialized by an advisory lock held
to commit, so a double click or two concurrent "replay failed" calls cannot schedule the
same event twice: the second sees the first's pending deliveries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from webhook_dispatcher.adapters.event_log import DELIVERY_COLUMNS, StoredEvent, delivery_from_row
from webhook_dispatcher.domain.merchant_views import DeliveryState
from webhook_dispatcher.domain.replay import REPLAYABLE


@dataclass(frozen=True)
class LatestDelivery:
    state: DeliveryState
    callback_url: str | None


async def lock_replays(conn: asyncpg.Connection, merchant_id: uuid.UUID, environment: str) -> None:
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        f"webhooks.replay:{merchant_id}:{environment}",
    )


async def latest_delivery(conn: asyncpg.Connection, event_id: str) -> LatestDelivery | None:
    row = await conn.fetchrow(
        f"SELECT {DELIVERY_COLUMNS}, callback_url FROM delivery WHERE event_id = $1"
        " ORDER BY created_at DESC, id DESC LIMIT 1",
        event_id,
    )
    if row is None:
        return None
    return LatestDelivery(delivery_from_row(row), row["callback_url"])


async def make_due_now(conn: asyncpg.Connection, delivery_id: uuid.UUID) -> None:
    """A pending delivery is brought forward; one being sent right now is left to finish."""
    await conn.execute(
        "UPDATE delivery SET next_attempt_at = now(), updated_at = now()"
        " WHERE id = $1 AND status = 'pending'"
        " AND (locked_until IS NULL OR locked_until <= now())",
        delivery_id,
    )


async def insert_replay(
    conn: asyncpg.Connection, event: StoredEvent, callback_url: str | None, requested_by: uuid.UUID
) -> DeliveryState:
    row = await conn.fetchrow(
        "INSERT INTO delivery (id, event_id, merchant_id, environment, callback_url, status,"
        " next_attempt_at, requested_by) VALUES ($1, $2, $3, $4, $5, 'pending', now(), $6)"
        f" RETURNING {DELIVERY_COLUMNS}",
        uuid.uuid4(),
        event.id,
        event.merchant_id,
        event.environment,
        callback_url,
        requested_by,
    )
    return delivery_from_row(row)


# Every non-test event since T whose latest delivery ended undelivered gets a new delivery,
# to the same destination (a payment's callback_url stays its destination).
_REPLAY_FAILED = """
WITH latest AS (
    SELECT DISTINCT ON (d.event_id) d.event_id, d.status, d.callback_url
    FROM event e JOIN delivery d ON d.event_id = e.id
    WHERE e.merchant_id = $1 AND e.environment = $2 AND e.occurred_at >= $3 AND NOT e.test
    ORDER BY d.event_id, d.created_at DESC, d.id DESC
)
INSERT INTO delivery (id, event_id, merchant_id, environment, callback_url, status,
                      next_attempt_at, requested_by)
SELECT gen_random_uuid(), l.event_id, $1, $2, l.callback_url, 'pending', now(), $4
FROM latest l WHERE l.status = ANY($5::text[])
"""


async def replay_failed(
    conn: asyncpg.Connection,
    merchant_id: uuid.UUID,
    environment: str,
    since: datetime,
    requested_by: uuid.UUID,
) -> int:
    status = await conn.execute(
        _REPLAY_FAILED, merchant_id, environment, since, requested_by, list(REPLAYABLE)
    )
    return int(status.split()[-1])


async def replays_requested_by(conn: asyncpg.Connection, requested_by: uuid.UUID) -> int:
    """How many deliveries one command scheduled (the answer to its redelivery)."""
    count = await conn.fetchval(
        "SELECT count(*) FROM delivery WHERE requested_by = $1", requested_by
    )
    return int(count)
