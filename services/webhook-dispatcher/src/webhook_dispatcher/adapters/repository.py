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
    ENDPOINT_DISABLED,
    NO_ENDPOINT,
    NO_SECRET,
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
# caller passes each message once), with the endpoint read in the same statement and each
# delivery routed by `domain.delivery.resolve_target`'s rules, in its order ('send' is a
# Target, 'wait' a Wait). Deliveries to send are inserted already leased (the claim's lease
# and fencing token) up to the merchant's free slots (`per_endpoint` minus its live leases,
# as the claim counts them) and `$16` in all, for the caller to attempt at once; the rest are
# due now for the claim loop (NOTIFY). `n` keeps the batch's order.
_RECORD_EVENTS = f"""
WITH batch AS (
    SELECT * FROM unnest($1::uuid[], $3::text[], $4::uuid[], $5::text[], $6::text[],
                         $7::uuid[], $8::uuid[], $9::bytea[], $10::timestamptz[], $11::uuid[],
                         $12::text[], $13::text[])
        WITH ORDINALITY AS b(message_id, event_id, merchant_id, environment, type, payment_id,
                             refund_id, body, occurred_at, delivery_id, callback_url,
                             traceparent, n)
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
), routed AS (
    SELECT b.delivery_id, b.event_id, b.merchant_id, b.environment, b.callback_url, b.n,
           p.merchant_id IS NOT NULL AS has_endpoint, p.url, p.secrets_sealed,
           p.secrets_expire_at, p.disabled_at, p.failing_since,
           CASE WHEN p.merchant_id IS NULL THEN CASE WHEN $14 THEN 'no_endpoint' ELSE 'wait' END
                WHEN cardinality(p.secrets_sealed) = 0 THEN 'dead'
                WHEN coalesce(b.callback_url, '') <> '' THEN 'send'
                WHEN p.url IS NULL THEN 'no_endpoint'
                WHEN p.disabled_at IS NOT NULL THEN 'endpoint_disabled'
                ELSE 'send' END AS route
    FROM batch b JOIN stored ON stored.id = b.event_id
    LEFT JOIN endpoint p ON p.merchant_id = b.merchant_id AND p.environment = b.environment
), busy AS (
    SELECT merchant_id, count(*) AS leases FROM delivery
    WHERE status = 'pending' AND locked_until > now()
      AND merchant_id IN (SELECT merchant_id FROM routed WHERE route = 'send')
    GROUP BY merchant_id
), lease AS (
    SELECT s.delivery_id, row_number() OVER (ORDER BY s.n) AS m
    FROM (SELECT delivery_id, merchant_id, n,
                 row_number() OVER (PARTITION BY merchant_id ORDER BY n) AS k
          FROM routed WHERE route = 'send') s
    LEFT JOIN busy USING (merchant_id)
    WHERE s.k <= $15 - coalesce(busy.leases, 0)
), delivered AS (
    INSERT INTO delivery (id, event_id, merchant_id, environment, callback_url, status,
                          next_attempt_at, last_error, completed_at, locked_until, claim_token)
    SELECT r.delivery_id, r.event_id, r.merchant_id, r.environment, r.callback_url,
           CASE WHEN r.route IN ('send', 'wait') THEN 'pending' ELSE r.route END,
           CASE WHEN r.route IN ('send', 'wait') THEN now() END,
           CASE r.route WHEN 'no_endpoint' THEN $17 WHEN 'dead' THEN $18
                        WHEN 'endpoint_disabled' THEN $19 END,
           CASE WHEN r.route IN ('send', 'wait') THEN NULL ELSE now() END,
           CASE WHEN l.m <= $16 THEN now() + make_interval(secs => $20) END,
           CASE WHEN l.m <= $16 THEN gen_random_uuid() END
    FROM routed r LEFT JOIN lease l USING (delivery_id) ORDER BY r.n
    RETURNING id, status, claim_token, created_at
)
SELECT NULL::uuid AS delivery_id, NULL::text AS status, NULL::uuid AS claim_token,
       NULL::timestamptz AS created_at, NULL::boolean AS has_endpoint, NULL::text AS url,
       NULL::text[] AS secrets_sealed, NULL::timestamptz[] AS secrets_expire_at,
       NULL::timestamptz AS disabled_at, NULL::timestamptz AS failing_since,
       array(SELECT message_id FROM claimed) AS claimed,
       (SELECT pg_notify('{NOTIFY_CHANNEL}', '')::text WHERE EXISTS (
           SELECT 1 FROM delivered WHERE status = 'pending' AND claim_token IS NULL))
           AS notified
UNION ALL
SELECT d.id, d.status, d.claim_token, d.created_at, r.has_endpoint, r.url, r.secrets_sealed,
       r.secrets_expire_at, r.disabled_at, r.failing_since, NULL, NULL
FROM delivered d JOIN routed r ON r.delivery_id = d.id
"""


@dataclass(frozen=True)
class NewDelivery:
    """The delivery a new event got: leased (a `claim_token`) when it is to be sent now."""

    message: WebhookSource
    body: bytes
    id: uuid.UUID
    status: DeliveryStatus
    claim_token: uuid.UUID | None
    created_at: datetime
    endpoint: Endpoint | None
    traceparent: str | None


@dataclass(frozen=True)
class Lease:
    """How many of a batch's deliveries may be leased for an attempt right away."""

    limit: int  # in all (the caller's free sending slots)
    per_endpoint: int  # in flight per merchant, as the claim counts
    seconds: float


@dataclass(frozen=True)
class RecordedEvents:
    claimed: set[uuid.UUID]  # message ids not handled before
    deliveries: list[NewDelivery]  # one per new event, in the batch's order


async def record_events(
    pool: asyncpg.Pool,
    messages: Sequence[tuple[WebhookSource, bytes]],
    *,
    consumer: str,
    wait_for_endpoint: bool,
    lease: Lease,
) -> RecordedEvents:
    """`record_event` for many messages (and their bodies) in one statement, the endpoint
    read in it; new deliveries to send leased within `lease`.

    Each message id must appear once (a batch may carry a duplicate: the caller keeps one).
    """
    columns = [_event_columns(message, body) for message, body in messages]
    ids = [uuid.uuid4() for _ in messages]
    traceparents = [traceparent_of(message.message_id) for message, _ in messages]
    rows = await pool.fetch(
        _RECORD_EVENTS,
        [message.message_id for message, _ in messages],
        consumer,
        *(list(values) for values in zip(*columns, strict=True)),
        ids,
        [message.callback_url for message, _ in messages],
        traceparents,
        not wait_for_endpoint,
        lease.per_endpoint,
        lease.limit,
        NO_ENDPOINT,
        NO_SECRET,
        ENDPOINT_DISABLED,
        lease.seconds,
    )
    by_id = {
        delivery_id: (message, body, traceparent)
        for delivery_id, (message, body), traceparent in zip(
            ids, messages, traceparents, strict=True
        )
    }
    claimed: set[uuid.UUID] = set()
    deliveries: list[NewDelivery] = []
    for row in rows:
        if row["delivery_id"] is None:
            claimed = set(row["claimed"])
            continue
        message, body, traceparent = by_id[row["delivery_id"]]
        deliveries.append(
            NewDelivery(
                message=message,
                body=body,
                id=row["delivery_id"],
                status=row["status"],
                claim_token=row["claim_token"],
                created_at=row["created_at"],
                endpoint=endpoint_from_row(row) if row["has_endpoint"] else None,
                traceparent=traceparent,
            )
        )
    position = {delivery_id: i for i, delivery_id in enumerate(ids)}
    deliveries.sort(key=lambda d: position[d.id])
    return RecordedEvents(claimed, deliveries)


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
