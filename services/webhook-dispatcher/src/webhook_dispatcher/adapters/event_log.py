"""SQL of the merchant's reads: its events, their delivery log and its endpoint's state.

Every read of an event is scoped by merchant AND environment: a test event never shows in
live, and one merchant never sees another's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from webhook_dispatcher.domain.merchant_views import (
    AttemptRecord,
    DeliveryState,
    EndpointStatus,
    EventSummary,
)

DELIVERY_FIELDS = (
    "id",
    "status",
    "attempt_count",
    "next_attempt_at",
    "last_status_code",
    "last_error",
    "created_at",
    "completed_at",
)
DELIVERY_COLUMNS = ", ".join(DELIVERY_FIELDS)
# The latest delivery's columns beside the event's, renamed so neither shadows the other.
_LATEST_COLUMNS = ", ".join(f"x.{f} AS delivery_{f}" for f in DELIVERY_FIELDS)


@dataclass(frozen=True)
class StoredEvent:
    id: str
    merchant_id: uuid.UUID
    environment: str
    type: str
    occurred_at: datetime
    test: bool
    body: bytes
    created_at: datetime


async def find_event(
    conn: asyncpg.Connection, event_id: str, merchant_id: uuid.UUID, environment: str
) -> StoredEvent | None:
    row = await conn.fetchrow(
        "SELECT id, merchant_id, environment, type, occurred_at, test, body, created_at"
        " FROM event"
        " WHERE id = $1 AND merchant_id = $2 AND environment = $3",
        event_id,
        merchant_id,
        environment,
    )
    if row is None:
        return None
    return StoredEvent(**{**dict(row.items()), "body": bytes(row["body"])})


_PAGE = f"""
SELECT e.id, e.type, e.environment, e.occurred_at, e.test, d.*
FROM event e
LEFT JOIN LATERAL (
    SELECT {_LATEST_COLUMNS} FROM delivery x WHERE x.event_id = e.id
    ORDER BY x.created_at DESC, x.id DESC LIMIT 1
) d ON true
WHERE e.merchant_id = $1 AND e.environment = $2
  AND ($3::text IS NULL OR e.type = $3)
  AND ($4::timestamptz IS NULL OR (e.created_at, e.id) < ($4::timestamptz, $5::text))
ORDER BY e.created_at DESC, e.id DESC
LIMIT $6
"""


async def list_events(
    conn: asyncpg.Connection,
    merchant_id: uuid.UUID,
    environment: str,
    *,
    limit: int,
    after: StoredEvent | None,
    event_type: str | None,
) -> tuple[list[EventSummary], bool]:
    """A page newest first and whether more follow; `after` is the previous page's last."""
    rows = await conn.fetch(
        _PAGE,
        merchant_id,
        environment,
        event_type,
        after.created_at if after else None,
        after.id if after else None,
        limit + 1,
    )
    return [_summary(row) for row in rows[:limit]], len(rows) > limit


def _summary(row: asyncpg.Record) -> EventSummary:
    has_delivery = row["delivery_id"] is not None
    return EventSummary(
        id=row["id"],
        type=row["type"],
        environment=row["environment"],
        occurred_at=row["occurred_at"],
        test=row["test"],
        delivery=delivery_from_row(row, prefix="delivery_") if has_delivery else None,
    )


def delivery_from_row(row: asyncpg.Record, prefix: str = "") -> DeliveryState:
    return DeliveryState(**{field: row[prefix + field] for field in DELIVERY_FIELDS})


async def deliveries_of(conn: asyncpg.Connection, event_id: str) -> list[DeliveryState]:
    """Newest first: the first is the one whose status the event list shows."""
    rows = await conn.fetch(
        f"SELECT {DELIVERY_COLUMNS} FROM delivery WHERE event_id = $1"
        " ORDER BY created_at DESC, id DESC",
        event_id,
    )
    return [delivery_from_row(row) for row in rows]


async def attempts_of(
    conn: asyncpg.Connection, delivery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[AttemptRecord]]:
    rows = await conn.fetch(
        "SELECT delivery_id, attempt_number, started_at, status_code, error, duration_ms, url,"
        " response_excerpt FROM delivery_attempt WHERE delivery_id = ANY($1::uuid[])"
        " ORDER BY attempt_number, id",
        delivery_ids,
    )
    found: dict[uuid.UUID, list[AttemptRecord]] = {d: [] for d in delivery_ids}
    for row in rows:
        found[row["delivery_id"]].append(_attempt(row))
    return found


def _attempt(row: asyncpg.Record) -> AttemptRecord:
    return AttemptRecord(
        number=row["attempt_number"],
        started_at=row["started_at"],
        status_code=row["status_code"],
        error=row["error"],
        duration_ms=row["duration_ms"],
        url=row["url"],
        response_excerpt=row["response_excerpt"],
    )


async def endpoint_status(
    conn: asyncpg.Connection, merchant_id: uuid.UUID, environment: str
) -> EndpointStatus | None:
    """The endpoint of the API key's environment: test and live each have their own."""
    row = await conn.fetchrow(
        "SELECT environment, url, disabled_at, disabled_reason, failing_since,"
        " (SELECT max(x) FROM unnest(secrets_expire_at) AS x) AS secret_overlap_until"
        " FROM endpoint WHERE merchant_id = $1 AND environment = $2",
        merchant_id,
        environment,
    )
    return EndpointStatus(**dict(row.items())) if row is not None else None
