"""SQL of the dispatcher loop: claim due deliveries, then record what happened.

A claim is a short transaction of its own (a lease in `locked_until` plus a fencing
`claim_token`), committed before any HTTP call: no transaction stays open while a merchant's
server thinks. A dispatcher that dies mid-send leaves the lease to expire and another one
sends again (the merchant deduplicates by event id). A late writer whose lease was taken over
cannot overwrite the new owner's state: every write checks the token.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from webhook_dispatcher.adapters.repository import endpoint_from_row
from webhook_dispatcher.domain.delivery import (
    AttemptOutcome,
    Decision,
    Endpoint,
    Skip,
    Target,
)


@dataclass(frozen=True)
class ClaimedDelivery:
    id: uuid.UUID
    claim_token: uuid.UUID
    event_id: str
    event_type: str
    merchant_id: uuid.UUID
    environment: str
    callback_url: str | None
    attempt_count: int
    created_at: datetime
    body: bytes
    endpoint: Endpoint | None
    # The payment's trace (stored with the event): each POST of the event is a span of it.
    traceparent: str | None = None


# Due deliveries, fairly across merchants, never more than `per_endpoint` in flight for one
# merchant (counting every replica's live leases). Replicas racing may briefly exceed it.
_CLAIM = """
WITH busy AS (
    SELECT merchant_id, count(*) AS n FROM delivery
    WHERE status = 'pending' AND locked_until > now() GROUP BY merchant_id
), ready AS (
    SELECT merchant_id, min(next_attempt_at) AS due FROM delivery
    WHERE status = 'pending' AND next_attempt_at <= now()
      AND (locked_until IS NULL OR locked_until <= now())
    GROUP BY merchant_id ORDER BY due LIMIT $1
), picked AS (
    SELECT d.id FROM ready r LEFT JOIN busy b USING (merchant_id)
    CROSS JOIN LATERAL (
        SELECT x.id, x.next_attempt_at FROM delivery x
        WHERE x.merchant_id = r.merchant_id AND x.status = 'pending'
          AND x.next_attempt_at <= now()
          AND (x.locked_until IS NULL OR x.locked_until <= now())
        ORDER BY x.next_attempt_at
        LIMIT greatest($2 - coalesce(b.n, 0), 0)
        FOR UPDATE SKIP LOCKED
    ) d
    ORDER BY d.next_attempt_at LIMIT $1
), claimed AS (
    UPDATE delivery SET locked_until = now() + make_interval(secs => $3),
        claim_token = gen_random_uuid(), updated_at = now()
    FROM picked WHERE delivery.id = picked.id
    RETURNING delivery.*
)
SELECT c.id, c.claim_token, c.event_id, e.type AS event_type, c.merchant_id, c.environment,
       c.callback_url, c.attempt_count, c.created_at, e.body, e.traceparent,
       p.merchant_id IS NOT NULL AS has_endpoint, p.url, p.secrets_sealed,
       p.secrets_expire_at, p.disabled_at, p.failing_since
FROM claimed c JOIN event e ON e.id = c.event_id
LEFT JOIN endpoint p ON p.merchant_id = c.merchant_id AND p.environment = c.environment
"""


async def claim_due(
    pool: asyncpg.Pool, *, limit: int, per_endpoint: int, lease_seconds: float
) -> list[ClaimedDelivery]:
    rows = await pool.fetch(_CLAIM, limit, per_endpoint, lease_seconds)
    return [_claimed(row) for row in rows]


def _claimed(row: asyncpg.Record) -> ClaimedDelivery:
    return ClaimedDelivery(
        id=row["id"],
        claim_token=row["claim_token"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        merchant_id=row["merchant_id"],
        environment=row["environment"],
        callback_url=row["callback_url"],
        attempt_count=row["attempt_count"],
        created_at=row["created_at"],
        body=bytes(row["body"]),
        endpoint=endpoint_from_row(row) if row["has_endpoint"] else None,
        traceparent=row["traceparent"],
    )


# The attempt, the delivery's next state (only while the lease's token is still ours) and the
# endpoint's health, in one statement. The endpoint row is written only when its health
# changes (a failure, a recovery, a disablement), not on every success: many deliveries to
# one merchant would otherwise queue on its row lock.
_RECORD_ATTEMPT = """
WITH attempt AS (
    INSERT INTO delivery_attempt (delivery_id, attempt_number, url, started_at, duration_ms,
                                  status_code, error, response_excerpt, succeeded)
    VALUES ($1, $3, $4, $5, $6, $7, $8, $9, $10)
), owned AS (
    UPDATE delivery SET status = $11::text, attempt_count = attempt_count + 1,
        next_attempt_at = $12, locked_until = NULL, claim_token = NULL,
        last_status_code = $7, last_error = $13, updated_at = now(),
        completed_at = CASE WHEN $11::text = 'pending' THEN NULL ELSE now() END
    WHERE id = $1 AND claim_token = $2
    RETURNING 1
), health AS (
    UPDATE endpoint SET
        failing_since = CASE WHEN $10 THEN NULL ELSE coalesce(failing_since, now()) END,
        disabled_at = CASE WHEN $15::text IS NULL THEN disabled_at
            ELSE coalesce(disabled_at, now()) END,
        disabled_reason = CASE WHEN $15::text IS NULL THEN disabled_reason
            ELSE coalesce(disabled_reason, $15::text) END,
        updated_at = now()
    WHERE $16 AND merchant_id = $14 AND environment = $18 AND url = $17
      AND (($10 AND failing_since IS NOT NULL) OR (NOT $10 AND failing_since IS NULL)
           OR ($15::text IS NOT NULL AND disabled_at IS NULL))
)
SELECT EXISTS (SELECT 1 FROM owned)
"""


async def record_attempt(
    pool: asyncpg.Pool,
    job: ClaimedDelivery,
    *,
    target: Target,
    url_shown: str,
    started_at: datetime,
    outcome: AttemptOutcome,
    decision: Decision,
) -> bool:
    """The attempt, the delivery's next state and the endpoint's health, atomically.

    Returns False when the lease was lost meanwhile (the attempt is still logged).
    """
    owned = await pool.fetchval(
        _RECORD_ATTEMPT,
        job.id,
        job.claim_token,
        job.attempt_count + 1,
        url_shown,
        started_at,
        outcome.duration_ms,
        outcome.status_code,
        outcome.error,
        outcome.response_excerpt,
        outcome.succeeded,
        decision.status,
        decision.next_attempt_at,
        outcome.error or _http_error(outcome),
        job.merchant_id,
        decision.disable_endpoint,
        target.is_endpoint,
        target.url,
        job.environment,
    )
    return bool(owned)


@dataclass(frozen=True)
class Success:
    """A successful attempt to record (nothing else follows it: no retry, no disablement)."""

    job: ClaimedDelivery
    target: Target
    url_shown: str
    started_at: datetime
    outcome: AttemptOutcome


# `_RECORD_ATTEMPT` for many successful attempts at once: each attempt logged, each delivery
# succeeded while its lease's token is still ours, an endpoint's failure streak ended.
_RECORD_SUCCESSES = """
WITH s AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::timestamptz[],
                         $6::int[], $7::int[], $8::text[], $9::uuid[], $10::text[],
                         $11::boolean[], $12::text[])
        AS s(delivery_id, claim_token, attempt_number, url, started_at, duration_ms,
             status_code, response_excerpt, merchant_id, environment, is_endpoint, target_url)
), attempt AS (
    INSERT INTO delivery_attempt (delivery_id, attempt_number, url, started_at, duration_ms,
                                  status_code, error, response_excerpt, succeeded)
    SELECT delivery_id, attempt_number, url, started_at, duration_ms, status_code, NULL,
           response_excerpt, true
    FROM s
), owned AS (
    UPDATE delivery d SET status = 'succeeded', attempt_count = d.attempt_count + 1,
        next_attempt_at = NULL, locked_until = NULL, claim_token = NULL,
        last_status_code = s.status_code, last_error = NULL, updated_at = now(),
        completed_at = now()
    FROM s WHERE d.id = s.delivery_id AND d.claim_token = s.claim_token
    RETURNING d.id
), health AS (
    UPDATE endpoint p SET failing_since = NULL, updated_at = now()
    FROM s WHERE s.is_endpoint AND p.merchant_id = s.merchant_id
      AND p.environment = s.environment AND p.url = s.target_url
      AND p.failing_since IS NOT NULL
)
SELECT array(SELECT id FROM owned)
"""


async def record_successes(pool: asyncpg.Pool, successes: list[Success]) -> set[uuid.UUID]:
    """Many successful attempts in one statement; the deliveries whose lease was still ours
    (every attempt is logged either way)."""
    owned = await pool.fetchval(
        _RECORD_SUCCESSES,
        [s.job.id for s in successes],
        [s.job.claim_token for s in successes],
        [s.job.attempt_count + 1 for s in successes],
        [s.url_shown for s in successes],
        [s.started_at for s in successes],
        [s.outcome.duration_ms for s in successes],
        [s.outcome.status_code for s in successes],
        [s.outcome.response_excerpt for s in successes],
        [s.job.merchant_id for s in successes],
        [s.job.environment for s in successes],
        [s.target.is_endpoint for s in successes],
        [s.target.url for s in successes],
    )
    return set(owned)


def _http_error(outcome: AttemptOutcome) -> str | None:
    if outcome.succeeded or outcome.status_code is None:
        return None
    return f"HTTP {outcome.status_code}"


async def postpone(pool: asyncpg.Pool, job: ClaimedDelivery, until: datetime) -> None:
    """Not an attempt: the endpoint record is awaited (its arrival wakes the delivery)."""
    await pool.execute(
        "UPDATE delivery SET next_attempt_at = $3, locked_until = NULL, claim_token = NULL,"
        " updated_at = now() WHERE id = $1 AND claim_token = $2",
        job.id,
        job.claim_token,
        until,
    )


async def skip(pool: asyncpg.Pool, job: ClaimedDelivery, reason: Skip) -> None:
    await pool.execute(
        "UPDATE delivery SET status = $3, last_error = $4, next_attempt_at = NULL,"
        " locked_until = NULL, claim_token = NULL, updated_at = now(), completed_at = now()"
        " WHERE id = $1 AND claim_token = $2",
        job.id,
        job.claim_token,
        reason.status,
        reason.reason,
    )


async def release(pool: asyncpg.Pool, jobs: list[ClaimedDelivery]) -> None:
    """On shutdown: unfinished sends become due again at once for the next dispatcher."""
    if not jobs:
        return
    await pool.execute(
        "UPDATE delivery SET locked_until = NULL, claim_token = NULL, updated_at = now()"
        " WHERE claim_token = ANY($1::uuid[])",
        [job.claim_token for job in jobs],
    )
