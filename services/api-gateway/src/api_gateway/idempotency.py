"""Idempotency-Key: 24 h per merchant and environment, as the seed says.

The first request with a key claims it (`in_flight`) before any effect; its final answer
is stored with it. The same key and body later replays that answer (200,
`idempotent_replay: true`); a different body is `idempotency_key_reused`; a request while
the first is still running is `idempotency_key_in_use`. A request that failed validation,
or whose outcome is unknown (orchestrator timeout), releases the key: a retry then reaches
the orchestrator, which is itself idempotent on (reference, key), so nothing is created twice.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from api_gateway.auth import Principal
from api_gateway.errors import ApiError


def request_digest(method: str, path: str, body: Any) -> str:
    canonical = orjson.dumps([method, path, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def parse_key(raw: str | None) -> str:
    if not raw:
        raise ApiError(
            400,
            "idempotency_key_missing",
            "An 'Idempotency-Key' header (a UUID) is required on this request.",
            "Idempotency-Key",
        )
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise ApiError(
            400,
            "idempotency_key_invalid",
            "'Idempotency-Key' must be a UUID.",
            "Idempotency-Key",
        ) from None


# A new key is inserted; a record past its TTL, or an in-flight claim older than the lock
# (its process died), is taken over in place. A live record is left alone (no row returned).
# Of concurrent claims on one stale record, the first takes it; the others wait on its row
# lock, then see a fresh record and return nothing.
CLAIM = """
INSERT INTO idempotency_record AS r (merchant_id, environment, key, request_digest, state)
VALUES ($1, $2, $3, $4, 'in_flight')
ON CONFLICT (merchant_id, environment, key) DO UPDATE
SET request_digest = excluded.request_digest, state = 'in_flight', response_status = NULL,
    response_body = NULL, created_at = now(), locked_at = now()
WHERE r.created_at < now() - make_interval(hours => $5)
   OR (r.state = 'in_flight' AND r.locked_at < now() - make_interval(secs => $6))
RETURNING true
"""


def _in_use() -> ApiError:
    return ApiError(
        409,
        "idempotency_key_in_use",
        "A request with this Idempotency-Key is in progress; retry shortly.",
        "Idempotency-Key",
        kind="idempotency_error",
    )


@dataclass(frozen=True)
class Replay:
    status: int
    body: bytes


class IdempotencyStore:
    def __init__(self, pool: asyncpg.Pool, ttl_hours: int, lock_seconds: int) -> None:
        self._pool = pool
        self._ttl = ttl_hours
        self._lock = lock_seconds

    async def claim(self, who: Principal, key: str, digest: str) -> Replay | None:
        """None: this request owns the key now. A Replay: answer with the stored result.

        One statement claims a new key or takes over a stale record (expired, or an
        abandoned claim whose process died); only a live record is read in a second one."""
        claimed = await self._pool.fetchval(
            CLAIM, who.merchant_id, who.environment, key, digest, self._ttl, float(self._lock)
        )
        if claimed:
            return None
        row = await self._pool.fetchrow(
            "SELECT request_digest, state, response_status, response_body"
            " FROM idempotency_record WHERE merchant_id = $1 AND environment = $2"
            " AND key = $3",
            who.merchant_id,
            who.environment,
            key,
        )
        if row is None:  # released between our claim and this read: the caller may retry
            raise _in_use()
        if row["request_digest"] != digest:
            raise ApiError(
                409,
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request.",
                "Idempotency-Key",
                kind="idempotency_error",
            )
        if row["state"] == "in_flight":
            raise _in_use()
        return Replay(row["response_status"], bytes(row["response_body"]))

    async def complete(self, who: Principal, key: str, status: int, body: bytes) -> None:
        await self._pool.execute(
            "UPDATE idempotency_record SET state = 'done', response_status = $4,"
            " response_body = $5 WHERE merchant_id = $1 AND environment = $2 AND key = $3",
            who.merchant_id,
            who.environment,
            key,
            status,
            body,
        )

    async def release(self, who: Principal, key: str) -> None:
        await self._pool.execute(
            "DELETE FROM idempotency_record WHERE merchant_id = $1 AND environment = $2"
            " AND key = $3 AND state = 'in_flight'",
            who.merchant_id,
            who.environment,
            key,
        )

    async def purge_expired(self) -> int:
        status = await self._pool.execute(
            "DELETE FROM idempotency_record WHERE created_at < now() - make_interval(hours => $1)",
            self._ttl,
        )
        return int(status.split()[-1])
