"""SQL of the event consumer: endpoints, events and new deliveries (caller's transaction)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from fluxpay_common.inbox import claim_cte
from fluxpay_common.messages import MerchantEndpointChanged, RefundEvent
from webhook_dispatcher.domain.delivery import DeliveryStatus, Endpoint
from webhook_dispatcher.domain.events import WebhookSource, event_id

NOTIFY_CHANNEL = "fluxpay_webhook_delivery"


async def upsert_endpoint(conn: asyncpg.Connection, change: MerchantEndpointChanged) -> bool:
    """Apply the change unless a newer one already was (events may arrive out of order).

    Any change the merchant makes re-enables a disabled endpoint: configuring the endpoint
    again is how a merchant says it is fixed.
    """
    row = await conn.fetchrow(
        "INSERT INTO endpoint (merchant_id, url, secrets_sealed, secret_overlap_until,"
        " changed_at) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (merchant_id) DO UPDATE SET url = EXCLUDED.url,"
        " secrets_sealed = EXCLUDED.secrets_sealed,"
        " secret_overlap_until = EXCLUDED.secret_overlap_until,"
        " changed_at = EXCLUDED.changed_at, disabled_at = NULL, disabled_reason = NULL,"
        " failing_since = NULL, updated_at = now()"
        " WHERE endpoint.changed_at <= EXCLUDED.changed_at"
        " RETURNING merchant_id",
        change.merchant_id,
        change.webhook_url,
        change.webhook_secrets_sealed,
        change.secret_overlap_until,
        change.occurred_at,
    )
    return row is not None


async def wake_waiting_deliveries(conn: asyncpg.Connection, merchant_id: uuid.UUID) -> int:
    """Deliveries that were waiting for this merchant's endpoint become due now."""
    status = await conn.execute(
        "UPDATE delivery SET next_attempt_at = now(), updated_at = now()"
        " WHERE merchant_id = $1 AND status = 'pending' AND attempt_count = 0"
        " AND next_attempt_at > now() AND (locked_until IS NULL OR locked_until <= now())",
        merchant_id,
    )
    return int(status.split()[-1])


async def load_endpoint(
    conn: asyncpg.Connection | asyncpg.Pool, merchant_id: uuid.UUID
) -> Endpoint | None:
    row = await conn.fetchrow(
        "SELECT url, secrets_sealed, secret_overlap_until, disabled_at, failing_since"
        " FROM endpoint WHERE merchant_id = $1",
        merchant_id,
    )
    return endpoint_from_row(row) if row is not None else None


def endpoint_from_row(row: asyncpg.Record) -> Endpoint:
    return Endpoint(
        url=row["url"],
        secrets_sealed=tuple(row["secrets_sealed"] or ()),
        secret_overlap_until=row["secret_overlap_until"],
        disabled_at=row["disabled_at"],
        failing_since=row["failing_since"],
    )


async def insert_event(
    conn: asyncpg.Connection, message: WebhookSource, body: bytes, *, test: bool = False
) -> bool:
    status = await conn.execute(
        "INSERT INTO event (id, merchant_id, environment, type, payment_id, refund_id, body,"
        " occurred_at, test) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (id) DO NOTHING",
        *_event_columns(message, body),
        test,
    )
    return status.endswith(" 1")


def _event_columns(message: WebhookSource, body: bytes) -> tuple[object, ...]:
    """An event row's values, `id` to `occurred_at`, in the table's column order."""
    refund_id = message.refund.id if isinstance(message, RefundEvent) else None
    return (
        event_id(message),
        message.merchant_id,
        message.environment,
        message.type,
        message.payment.id,
        refund_id,
        body,
        message.occurred_at,
    )


# The inbox claim, the event body and its delivery, in one statement: the event is stored
# only if the message was not handled before, the delivery only if the event is new.
_RECORD_EVENT = f"""
WITH {claim_cte(1, 2)}, stored AS (
    INSERT INTO event (id, merchant_id, environment, type, payment_id, refund_id, body,
                       occurred_at, test)
    SELECT $3, $4, $5, $6, $7, $8, $9, $10, false FROM claimed
    ON CONFLICT (id) DO NOTHING RETURNING id
), delivered AS (
    INSERT INTO delivery (id, event_id, merchant_id, environment, callback_url, status,
                          next_attempt_at, last_error, completed_at)
    SELECT $11, id, $4, $5, $12, $13::text, $14, $15,
           CASE WHEN $13::text = 'pending' THEN NULL ELSE now() END
    FROM stored RETURNING status
)
SELECT EXISTS (SELECT 1 FROM claimed) AS claimed,
       (SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM delivered WHERE status = 'pending')
"""


async def record_event(
    pool: asyncpg.Pool,
    message: WebhookSource,
    body: bytes,
    *,
    consumer: str,
    status: DeliveryStatus,
    next_attempt_at: datetime | None,
    last_error: str | None,
) -> bool:
    """Claim the message and store its event and delivery atomically; False if handled before.

    A new pending delivery wakes the dispatcher loop (the NOTIFY is delivered at commit).
    """
    row = await pool.fetchrow(
        _RECORD_EVENT,
        message.message_id,
        consumer,
        *_event_columns(message, body),
        uuid.uuid4(),
        message.callback_url,
        status,
        next_attempt_at,
        last_error,
    )
    assert row is not None
    return bool(row["claimed"])


async def insert_delivery(
    conn: asyncpg.Connection,
    message: WebhookSource,
    *,
    status: DeliveryStatus,
    next_attempt_at: datetime | None,
    last_error: str | None = None,
) -> uuid.UUID:
    delivery_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO delivery (id, event_id, merchant_id, environment, callback_url, status,"
        " next_attempt_at, last_error, completed_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
        " CASE WHEN $6 = 'pending' THEN NULL ELSE now() END)",
        delivery_id,
        event_id(message),
        message.merchant_id,
        message.environment,
        message.callback_url,
        status,
        next_attempt_at,
        last_error,
    )
    return delivery_id


async def notify_dispatcher(conn: asyncpg.Connection) -> None:
    """Delivered at commit: an idle dispatcher sends at once instead of at its next poll."""
    await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
