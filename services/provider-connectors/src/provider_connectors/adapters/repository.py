"""asyncpg access to `provider_attempt`, `provider_refund` and `provider_events`.

Every function runs on the caller's connection, inside the caller's transaction if it
opened one (the single statements that claim and insert, or write guarded by a version,
are atomic alone).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from faststream.rabbit import RabbitExchange

from fluxpay_common import inbox
from fluxpay_common.messages import Message
from fluxpay_common.outbox import RETURNED, OutboxRelay, statement_rows
from provider_connectors.domain.model import Attempt, RefundAttempt
from provider_connectors.domain.status import AttemptStatus, RefundStatus

# In the attempt's data: how many updates were published for the payment (their sequence).
UPDATE_SEQUENCE = "update_seq"

_ATTEMPT_COLUMNS = (
    "payment_id, provider, merchant_id, environment, reference, amount, currency, operator,"
    " phone, psp_reference, status, next_poll_at, expires_at, otp_attempts, created_at,"
    " updated_at, data"
)
_REFUND_COLUMNS = (
    "refund_id, payment_id, provider, amount, currency, psp_reference, status, next_poll_at,"
    " created_at, updated_at, data"
)


def _attempt(row: asyncpg.Record) -> Attempt:
    return Attempt(**{k: row[k] for k in _ATTEMPT_COLUMNS.replace(" ", "").split(",")})


def _refund(row: asyncpg.Record) -> RefundAttempt:
    return RefundAttempt(**{k: row[k] for k in _REFUND_COLUMNS.replace(" ", "").split(",")})


_INSERT_ATTEMPT = (
    "INSERT INTO provider_attempt ({columns}) {values}"
    " ON CONFLICT (payment_id) DO NOTHING RETURNING {columns}, version"
)
_ATTEMPT_PARAMS = ", ".join(f"${i}" for i in range(1, 18))


def _attempt_values(attempt: Attempt) -> tuple[Any, ...]:
    return (
        attempt.payment_id,
        attempt.provider,
        attempt.merchant_id,
        attempt.environment,
        attempt.reference,
        attempt.amount,
        attempt.currency,
        attempt.operator,
        attempt.phone,
        attempt.psp_reference,
        attempt.status,
        attempt.next_poll_at,
        attempt.expires_at,
        attempt.otp_attempts,
        attempt.created_at,
        attempt.updated_at,
        dict(attempt.data),
    )


async def insert_attempt(conn: asyncpg.Connection, attempt: Attempt) -> Attempt | None:
    """Insert a new attempt; None when the payment already has one (a repeated command)."""
    row = await conn.fetchrow(
        _INSERT_ATTEMPT.format(columns=_ATTEMPT_COLUMNS, values=f"VALUES ({_ATTEMPT_PARAMS})"),
        *_attempt_values(attempt),
    )
    return _attempt(row) if row else None


async def claim_and_insert_attempt(
    conn: asyncpg.Connection, attempt: Attempt, message_id: uuid.UUID, consumer: str
) -> tuple[Attempt, int] | None:
    """The command's inbox claim and its new attempt in one statement (atomic without
    BEGIN/COMMIT): the attempt and its version, or None when the command was handled before
    or the payment already has an attempt."""
    values = f"SELECT {_ATTEMPT_PARAMS} WHERE EXISTS (SELECT 1 FROM claimed)"
    row = await conn.fetchrow(
        f"WITH {inbox.claim_cte(18, 19)} "
        + _INSERT_ATTEMPT.format(columns=_ATTEMPT_COLUMNS, values=values),
        *_attempt_values(attempt),
        message_id,
        consumer,
    )
    return (_attempt(row), row["version"]) if row else None


async def get_attempt(
    conn: asyncpg.Connection, payment_id: uuid.UUID, *, lock: bool = False
) -> tuple[Attempt, int] | None:
    """The attempt and its version; `lock` holds its row until the transaction ends."""
    row = await conn.fetchrow(
        f"SELECT {_ATTEMPT_COLUMNS}, version FROM provider_attempt WHERE payment_id = $1"
        + (" FOR UPDATE" if lock else ""),
        payment_id,
    )
    return (_attempt(row), row["version"]) if row else None


async def find_attempt(
    conn: asyncpg.Connection,
    provider: str,
    *,
    psp_reference: str | None = None,
    reference: str | None = None,
) -> tuple[Attempt, int] | None:
    """The attempt (and its version) a PSP notification names by its own reference or ours."""
    columns = f"{_ATTEMPT_COLUMNS}, version"
    row = None
    if psp_reference:
        row = await conn.fetchrow(
            f"SELECT {columns} FROM provider_attempt WHERE provider = $1 AND psp_reference = $2",
            provider,
            psp_reference,
        )
    if row is None and reference:
        row = await conn.fetchrow(
            f"SELECT {columns} FROM provider_attempt WHERE provider = $1 AND reference = $2"
            " ORDER BY created_at DESC LIMIT 1",
            provider,
            reference,
        )
    return (_attempt(row), row["version"]) if row else None


@dataclass(frozen=True)
class Announcement:
    """The outbox messages announcing an attempt's write, numbered after `previous_sequence`
    (the sequence stored in its data when they were built); `relay` publishes them once the
    statement (or the transaction it runs in) commits."""

    messages: Sequence[tuple[RabbitExchange | str, str, Message]]
    previous_sequence: int
    relay: OutboxRelay | None


_SAVE_ATTEMPT = (
    "UPDATE provider_attempt SET status = $2, psp_reference = $3, otp_attempts = $4,"
    " next_poll_at = $5, data = data || $6::jsonb, version = version + 1,"
    " updated_at = now() WHERE payment_id = $1 AND ($7::bigint IS NULL OR version = $7)"
)
# The attempt's new state and the update announcing it (outbox) in one statement: atomic
# without BEGIN/COMMIT, the row inserted only when the guarded UPDATE wrote. Guarded too by
# the sequence the update was numbered from: the number it carries is the one stored.
_SAVE_ATTEMPT_ANNOUNCED = (
    f"WITH saved AS ({_SAVE_ATTEMPT}"
    f" AND coalesce((data ->> '{UPDATE_SEQUENCE}')::bigint, 0) = $8 RETURNING {_ATTEMPT_COLUMNS}),"
    " {outbox}"
    f" SELECT saved.*, {RETURNED} FROM saved"
)


async def save_attempt(
    conn: asyncpg.Connection,
    payment_id: uuid.UUID,
    *,
    status: AttemptStatus,
    psp_reference: str | None,
    otp_attempts: int,
    next_poll_at: datetime | None,
    data_patch: dict[str, Any],
    version: int | None = None,
    announce: Announcement | None = None,
) -> Attempt | None:
    """Write the attempt (the caller holds its row lock); given `version`, only if the row
    is still at that version (the UPDATE then takes the lock itself): None if it moved on.
    With `announce`, its messages go to the outbox in the same statement, only if the row
    was written and its stored sequence is still the one they were numbered after."""
    args = (payment_id, status, psp_reference, otp_attempts, next_poll_at, data_patch, version)
    if announce is None:
        row = await conn.fetchrow(f"{_SAVE_ATTEMPT} RETURNING {_ATTEMPT_COLUMNS}", *args)
        return _attempt(row) if row else None
    outbox = statement_rows(conn, announce.relay, announce.messages)
    row = await conn.fetchrow(
        _SAVE_ATTEMPT_ANNOUNCED.format(outbox=outbox.cte(9, "EXISTS (SELECT 1 FROM saved)")),
        *args,
        announce.previous_sequence,
        *outbox.args(),
    )
    await outbox.written(conn, row)
    return _attempt(row) if row else None


async def claim_due_attempts(
    conn: asyncpg.Connection, provider: str, now: datetime, lease_until: datetime, limit: int
) -> list[tuple[Attempt, int]]:
    """Reserve due attempts to this poller until `lease_until` (replicas skip them)."""
    rows = await conn.fetch(
        "UPDATE provider_attempt SET next_poll_at = $3, version = version + 1"
        " WHERE payment_id IN (SELECT payment_id FROM provider_attempt"
        "   WHERE provider = $1 AND next_poll_at <= $2 ORDER BY next_poll_at LIMIT $4"
        "   FOR UPDATE SKIP LOCKED)"
        f" RETURNING {_ATTEMPT_COLUMNS}, version",
        provider,
        now,
        lease_until,
        limit,
    )
    return [(_attempt(r), r["version"]) for r in rows]


async def insert_refund(conn: asyncpg.Connection, refund: RefundAttempt) -> RefundAttempt | None:
    row = await conn.fetchrow(
        f"INSERT INTO provider_refund ({_REFUND_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7,"
        f" $8, $9, $10, $11) ON CONFLICT (refund_id) DO NOTHING RETURNING {_REFUND_COLUMNS}",
        refund.refund_id,
        refund.payment_id,
        refund.provider,
        refund.amount,
        refund.currency,
        refund.psp_reference,
        refund.status,
        refund.next_poll_at,
        refund.created_at,
        refund.updated_at,
        dict(refund.data),
    )
    return _refund(row) if row else None


async def get_refund(
    conn: asyncpg.Connection, refund_id: uuid.UUID, *, lock: bool = False
) -> RefundAttempt | None:
    row = await conn.fetchrow(
        f"SELECT {_REFUND_COLUMNS} FROM provider_refund WHERE refund_id = $1"
        + (" FOR UPDATE" if lock else ""),
        refund_id,
    )
    return _refund(row) if row else None


async def find_refund_id(
    conn: asyncpg.Connection, provider: str, psp_reference: str
) -> uuid.UUID | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT refund_id FROM provider_refund WHERE provider = $1 AND psp_reference = $2",
        provider,
        psp_reference,
    )


async def save_refund(
    conn: asyncpg.Connection,
    refund_id: uuid.UUID,
    *,
    status: RefundStatus,
    psp_reference: str | None,
    next_poll_at: datetime | None,
    data_patch: dict[str, Any],
) -> RefundAttempt:
    row = await conn.fetchrow(
        "UPDATE provider_refund SET status = $2, psp_reference = $3, next_poll_at = $4,"
        " data = data || $5::jsonb, updated_at = now() WHERE refund_id = $1"
        f" RETURNING {_REFUND_COLUMNS}",
        refund_id,
        status,
        psp_reference,
        next_poll_at,
        data_patch,
    )
    return _refund(row)


async def claim_due_refunds(
    conn: asyncpg.Connection, provider: str, now: datetime, lease_until: datetime, limit: int
) -> list[RefundAttempt]:
    rows = await conn.fetch(
        "UPDATE provider_refund SET next_poll_at = $3"
        " WHERE refund_id IN (SELECT refund_id FROM provider_refund"
        "   WHERE provider = $1 AND next_poll_at <= $2 ORDER BY next_poll_at LIMIT $4"
        "   FOR UPDATE SKIP LOCKED)"
        f" RETURNING {_REFUND_COLUMNS}",
        provider,
        now,
        lease_until,
        limit,
    )
    return [_refund(r) for r in rows]


async def record_event(
    conn: asyncpg.Connection,
    provider: str,
    event_id: str,
    event_type: str,
    payment_id: uuid.UUID | None,
) -> bool:
    """Record an inbound PSP event; False when it was already recorded (a duplicate)."""
    status = await conn.execute(
        "INSERT INTO provider_events (provider, event_id, event_type, payment_id)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (provider, event_id) DO NOTHING",
        provider,
        event_id,
        event_type,
        payment_id,
    )
    return status.endswith(" 1")


# ---------------------------------------------------------------- review queue

_REVIEW_COLUMNS = (
    "payment_id, provider, merchant_id, reason, last_status, queued_at, resolved_at,"
    " resolution, resolution_reason, resolved_by"
)


async def queue_review(conn: asyncpg.Connection, attempt: Attempt, reason: str) -> bool:
    """Put an unsettled attempt in the review queue once; True when it was queued now."""
    queued = await conn.fetchval(
        "INSERT INTO provider_review (payment_id, provider, merchant_id, reason, last_status)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (payment_id) DO NOTHING RETURNING true",
        attempt.payment_id,
        attempt.provider,
        attempt.merchant_id,
        reason,
        attempt.status,
    )
    return bool(queued)


async def close_review(
    conn: asyncpg.Connection, payment_id: uuid.UUID, resolution: str, reason: str, actor: str
) -> bool:
    """Mark an open review resolved; False when none was open."""
    closed = await conn.fetchval(
        "UPDATE provider_review SET resolved_at = now(), resolution = $2,"
        " resolution_reason = $3, resolved_by = $4"
        " WHERE payment_id = $1 AND resolved_at IS NULL RETURNING true",
        payment_id,
        resolution,
        reason,
        actor,
    )
    return bool(closed)


async def get_review(
    conn: asyncpg.Connection, payment_id: uuid.UUID, *, lock: bool = False
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_REVIEW_COLUMNS} FROM provider_review WHERE payment_id = $1"
        + (" FOR UPDATE" if lock else ""),
        payment_id,
    )
    return dict(row) if row else None


async def open_reviews(
    conn: asyncpg.Connection, provider: str | None, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT r.{_REVIEW_COLUMNS.replace(', ', ', r.')}, a.reference, a.amount, a.currency,"
        " a.psp_reference, a.environment FROM provider_review r"
        " JOIN provider_attempt a USING (payment_id)"
        " WHERE r.resolved_at IS NULL AND ($1::text IS NULL OR r.provider = $1)"
        " ORDER BY r.queued_at LIMIT $2",
        provider,
        limit,
    )
    return [dict(row) for row in rows]


async def count_open_reviews(conn: asyncpg.Connection, provider: str | None) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM provider_review"
            " WHERE resolved_at IS NULL AND ($1::text IS NULL OR provider = $1)",
            provider,
        )
    )
