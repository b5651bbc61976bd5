"""SQL of the event consumer: endpoints, events and new deliveries (caller's transaction)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from fluxpay_common.batch_consumer import traceparent_of
from fluxpay_common.inbox import claim_cte
from fluxpay_common.messages import MerchantEndpointChanged, RefundEvent
from fluxpay_common.ssrf import without_credentials
from fluxpay_common.tracing import current_traceparent
from webhook_dispatcher.domain.delivery import (
    DeliveryStatus,
    Endpoint,
    SigningSecret,
    environments_of_change,
    secrets_of_change,
)
from webhook_dispatcher.domain.events import WebhookSource, event_id

NOTIFY_CHANNEL = "fluxpay_webhook_delivery"


# A URL with credentials (an older publisher's) is stored without them, the endpoint then
# disabled with this reason: the merchant sets the URL again without them.
CREDENTIALS_REMOVED = (
    "the URL contained credentials (user:password@), which FluxPay no longer stores;"
    " set the URL again without them"
)

_UPSERT_ENDPOINT = """
INSERT INTO endpoint (merchant_id, environment, url, secrets_sealed, secrets_expire_at,
                      changed_at, disabled_at, disabled_reason)
SELECT $1, env, $3, $4, $5, $6, CASE WHEN $7::text IS NULL THEN NULL ELSE now() END, $7
FROM unnest($2::text[]) AS env
ON CONFLICT (merchant_id, environment) DO UPDATE SET url = EXCLUDED.url,
    secrets_sealed = EXCLUDED.secrets_sealed, secrets_expire_at = EXCLUDED.secrets_expire_at,
    changed_at = EXCLUDED.changed_at, disabled_at = EXCLUDED.disabled_at,
    disabled_reason = EXCLUDED.disabled_reason, failing_since = NULL, updated_at = now()
WHERE endpoint.changed_at <= EXCLUDED.changed_at
RETURNING environment
"""


async def upsert_endpoint(conn: asyncpg.Connection, change: MerchantEndpointChanged) -> list[str]:
    """Apply the change unless a newer one already was (events may arrive out of order);
    the environments it was applied to.

    Any change the merchant makes re-enables a disabled endpoint: configuring the endpoint
    again is how a merchant says it is fixed.
    """
    url = change.webhook_url
    stored_url = without_credentials(url) if url is not None else None
    secrets = secrets_of_change(change)
    rows = await conn.fetch(
        _UPSERT_ENDPOINT,
        change.merchant_id,
        environments_of_change(change),
        stored_url,
        [s.sealed for s in secrets],
        [s.expires_at for s in secrets],
        change.occurred_at,
        CREDENTIALS_REMOVED if stored_url != url else None,
    )
    return [row["environment"] for row in rows]


async def wake_waiting_deliveries(
    conn: asyncpg.Connection, merchant_id: uuid.UUID, environments: list[str]
) -> int:
    """Deliveries that were waiting for this merchant's endpoint become due now."""
    status = await conn.execute(
        "UPDATE delivery SET next_attempt_at = now(), updated_at = now()"
        " WHERE merchant_id = $1 AND environment = ANY($2::text[]) AND status = 'pending'"
        " AND attempt_count = 0 AND next_attempt_at > now()"
        " AND (locked_until IS NULL OR locked_until <= now())",
        merchant_id,
        environments,
    )
    return int(status.split()[-1])


async def load_endpoint(
    conn: asyncpg.Connection | asyncpg.Pool, merchant_id: uuid.UUID, environment: str
) -> Endpoint | None:
    row = await conn.fetchrow(
        "SELECT url, secrets_sealed, secrets_expire_at, disabled_at, failing_since"
        " FROM endpoint WHERE merchant_id = $1 AND environment = $2",
        merchant_id,
        environment,
    )
    return endpoint_from_row(row) if row is not None else None


def endpoint_from_row(row: asyncpg.Record) -> Endpoint:
    sealed = row["secrets_sealed"] or ()
    expiries = row["secrets_expire_at"] or ()
    return Endpoint(
        url=row["url"],
        secrets=tuple(SigningSecret(s, e) for s, e in zip(sealed, expiries, strict=True)),
        disabled_at=row["disabled_at"],
        failing_since=row["failing_since"],
    )


async def insert_event(
    conn: asyncpg.Connection, message: WebhookSource, body: bytes, *, test: bool = False
) -> bool:
    status = await conn.execute(
        "INSERT INTO event (id, merchant_id, environment, type, payment_id, refund_id, body,"
        " occurred_at, test, traceparent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        " ON CONFLICT (id) DO NOTHING",
        *_event_columns(message, body),
        test,
        current_traceparent(),
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
                       occurred_at, test, traceparent)
    SELECT $3, $4, $5, $6, $7, $8, $9, $10, false, $16 FROM claimed
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
        current_traceparent(),
    )
    assert row is not None
    return bool(row["claimed"])


# A batch of events: the same as `_RECORD_EVENT` for every row of the arrays at once (the
# caller passes each message once). `n` keeps the batch's order for the deliveries' rows.
_RECORD_EVENTS = f"""
WITH batch AS (
    SELECT * FROM unnest($1::uuid[], $3::text[], $4::uuid[], $5::text[], $6::text[],
                         $7::uuid[], $8::uuid[], $9::bytea[], $10::timestamptz[], $11::uuid[],
                         $12::text[], $13::text[], $14::timestamptz[], $15::text[],
                         $16::text[])
        WITH ORDINALITY AS b(message_id, event_id, merchant_id, environment, type, payment_id,
                             refund_id, body, occurred_at, delivery_id, callback_url, status,
                             next_attempt_at, last_error, traceparent, n)
), claimed AS (
    INSERT INTO inbox_message (message_id, consumer) SELECT message_id, $2 FROM batch
    ON CONFLICT (message_id) DO NOTHING RETURNING message_id
), stored AS (
    INSERT INTO event (id, merchant_id, environment, type, payment_id, refund_id, body,
                       occurred_at, test, traceparent)
    SELECT b.event_id, b.merchant_id, b.environment, b.type, b.payment_id, b.refund_id, b.body,
           b.occurred_at, false, b.traceparent
    FROM batch b JOIN claimed USING (message_id) ORDER BY b.n
    ON CONFLICT (id) DO NOTHING RETURNING id
), delivered AS (
    INSERT INTO delivery (id, event_id, merchant_id, environment, callback_url, status,
                          next_attempt_at, last_error, completed_at)
    SELECT b.delivery_id, b.event_id, b.merchant_id, b.environment, b.callback_url, b.status,
           b.next_attempt_at, b.last_error,
           CASE WHEN b.status = 'pending' THEN NULL ELSE now() END
    FROM batch b JOIN stored ON stored.id = b.event_id ORDER BY b.n RETURNING status
)
SELECT array(SELECT message_id FROM claimed) AS claimed,
       (SELECT pg_notify('{NOTIFY_CHANNEL}', '')
        WHERE EXISTS (SELECT 1 FROM delivered WHERE status = 'pending')) AS notified
"""


@dataclass(frozen=True)
class NewEvent:
    """One event of a batch, with what its delivery starts as."""

    message: WebhookSource
    body: bytes
    status: DeliveryStatus
    next_attempt_at: datetime | None
    last_error: str | None


async def record_events(
    pool: asyncpg.Pool, events: Sequence[NewEvent], *, consumer: str
) -> set[uuid.UUID]:
    """`record_event` for many messages in one statement; the ids of those not handled before.

    Each message id must appear once (a batch may carry a duplicate: the caller keeps one).
    """
    columns = [_event_columns(e.message, e.body) for e in events]
    row = await pool.fetchrow(
        _RECORD_EVENTS,
        [e.message.message_id for e in events],
        consumer,
        *(list(values) for values in zip(*columns, strict=True)),
        [uuid.uuid4() for _ in events],
        [e.message.callback_url for e in events],
        [e.status for e in events],
        [e.next_attempt_at for e in events],
        [e.last_error for e in events],
        [traceparent_of(e.message.message_id) for e in events],
    )
    assert row is not None
    return set(row["claimed"])


async def load_endpoints(
    pool: asyncpg.Pool, keys: Sequence[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], Endpoint]:
    """The endpoints of these (merchant, environment) pairs that exist, in one query."""
    rows = await pool.fetch(
        "SELECT merchant_id, environment, url, secrets_sealed, secrets_expire_at, disabled_at,"
        " failing_since FROM endpoint WHERE (merchant_id, environment) IN"
        " (SELECT * FROM unnest($1::uuid[], $2::text[]))",
        [merchant for merchant, _ in keys],
        [environment for _, environment in keys],
    )
    return {(row["merchant_id"], row["environment"]): endpoint_from_row(row) for row in rows}


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
