"""API keys: issue, list, revoke and rotate, scoped to one merchant and environment.

A key's secret is a random UUID (the Collect API's security scheme), shown once; only its
SHA-256 digest is stored, with its first eight and last four characters for display. Each
change is audited in the same transaction, so a failed change leaves neither key nor entry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from api_gateway import audit
from api_gateway.errors import ApiError
from api_gateway.roles import Role
from fluxpay_common.crypto import hash_api_key
from fluxpay_common.ids import new_id

COLUMNS = (
    "id, name, role, environment, prefix, last4, created_at, last_used_at, expires_at,"
    " revoked_at, rotated_to"
)


@dataclass(frozen=True)
class IssuedKey:
    secret: str
    row: asyncpg.Record


def key_body(row: Any, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "object": "api_key",
        "id": str(row["id"]),
        "name": row["name"],
        "role": row["role"],
        "environment": row["environment"],
        "prefix": row["prefix"],
        "last4": row["last4"],
        "created_at": _iso(row["created_at"]),
        "last_used_at": _iso(row["last_used_at"]),
        "expires_at": _iso(row["expires_at"]),
        "revoked": row["revoked_at"] is not None,
        "revoked_at": _iso(row["revoked_at"]),
        "rotated_to": str(row["rotated_to"]) if row["rotated_to"] else None,
    }
    if secret is not None:
        body["secret"] = secret
    return body


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def issue(
    conn: asyncpg.Connection,
    merchant_id: uuid.UUID,
    environment: str,
    name: str,
    role: Role,
    expires_at: datetime | None = None,
) -> IssuedKey:
    """A new key and its audit entry; call inside a transaction."""
    secret = str(uuid.uuid4())
    row = await conn.fetchrow(
        "INSERT INTO api_key (id, merchant_id, environment, key_digest, prefix, last4, name,"
        f" role, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}",
        new_id(),
        merchant_id,
        environment,
        hash_api_key(secret),
        secret[:8],
        secret[-4:],
        name,
        role.value,
        expires_at,
    )
    assert row is not None
    await audit.record(
        conn, "api_key.created", merchant_id, _summary(row), audit.actor_in(environment)
    )
    return IssuedKey(secret, row)


def _summary(row: Any) -> dict[str, Any]:
    return {
        "api_key_id": str(row["id"]),
        "name": row["name"],
        "role": row["role"],
        "prefix": row["prefix"],
        "expires_at": _iso(row["expires_at"]),
    }


async def create(
    pool: asyncpg.Pool,
    merchant_id: uuid.UUID,
    environment: str,
    name: str,
    role: Role,
    expires_at: datetime | None,
) -> IssuedKey:
    async with pool.acquire() as conn, conn.transaction():
        return await issue(conn, merchant_id, environment, name, role, expires_at)


async def page(
    pool: asyncpg.Pool,
    merchant_id: uuid.UUID,
    environment: str,
    limit: int,
    starting_after: str | None,
) -> list[asyncpg.Record]:
    """Newest first; `limit + 1` rows so the caller can tell `has_more`."""
    cursor = await _cursor(pool, merchant_id, environment, starting_after)
    return await pool.fetch(
        f"SELECT {COLUMNS} FROM api_key WHERE merchant_id = $1 AND environment = $2"
        " AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))"
        " ORDER BY created_at DESC, id DESC LIMIT $5",
        merchant_id,
        environment,
        cursor[0] if cursor else None,
        cursor[1] if cursor else None,
        limit + 1,
    )


async def _cursor(
    pool: asyncpg.Pool, merchant_id: uuid.UUID, environment: str, starting_after: str | None
) -> tuple[datetime, uuid.UUID] | None:
    if starting_after is None:
        return None
    row = await _find(pool, merchant_id, environment, starting_after)
    if row is None:
        raise ApiError(
            400,
            "invalid_starting_after",
            "'starting_after' is not an API key of this list.",
            "starting_after",
        )
    return row["created_at"], row["id"]


async def _find(
    conn: asyncpg.Connection | asyncpg.Pool,
    merchant_id: uuid.UUID,
    environment: str,
    key_id: str,
    lock: bool = False,
) -> asyncpg.Record | None:
    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        return None
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM api_key WHERE id = $1 AND merchant_id = $2"
        f" AND environment = $3{' FOR UPDATE' if lock else ''}",
        parsed,
        merchant_id,
        environment,
    )


def not_found(key_id: str) -> ApiError:
    return ApiError(404, "api_key_not_found", f"No API key '{key_id[:100]}'.", "id")


async def revoke(
    pool: asyncpg.Pool, merchant_id: uuid.UUID, environment: str, key_id: str
) -> asyncpg.Record:
    """Revoked at once (the next request with it is refused); revoking twice is a no-op."""
    async with pool.acquire() as conn, conn.transaction():
        row = await _find(conn, merchant_id, environment, key_id, lock=True)
        if row is None:
            raise not_found(key_id)
        if row["revoked_at"] is not None:
            return row
        revoked = await conn.fetchrow(
            f"UPDATE api_key SET revoked_at = now() WHERE id = $1 RETURNING {COLUMNS}", row["id"]
        )
        await audit.record(
            conn, "api_key.revoked", merchant_id, _summary(row), audit.actor_in(environment)
        )
        assert revoked is not None
        return revoked


async def rotate(
    pool: asyncpg.Pool, merchant_id: uuid.UUID, environment: str, key_id: str, grace: int
) -> tuple[IssuedKey, asyncpg.Record]:
    """A new key with the old one's name and role; the old one expires `grace` seconds from
    now (or sooner, if it was to expire sooner)."""
    async with pool.acquire() as conn, conn.transaction():
        old = await _find(conn, merchant_id, environment, key_id, lock=True)
        if old is None:
            raise not_found(key_id)
        if old["revoked_at"] is not None or old["rotated_to"] is not None:
            raise ApiError(
                409,
                "api_key_not_rotatable",
                "This API key was revoked or already rotated; rotate its successor instead.",
                "id",
            )
        new = await issue(conn, merchant_id, environment, old["name"], Role(old["role"]))
        retired = await conn.fetchrow(
            "UPDATE api_key SET rotated_to = $2, expires_at = least(coalesce(expires_at,"
            " 'infinity'), now() + make_interval(secs => $3)) WHERE id = $1"
            f" RETURNING {COLUMNS}",
            old["id"],
            new.row["id"],
            float(grace),
        )
        assert retired is not None
        details = {
            **_summary(old),
            "new_api_key_id": str(new.row["id"]),
            "old_key_expires_at": _iso(retired["expires_at"]),
        }
        await audit.record(
            conn, "api_key.rotated", merchant_id, details, audit.actor_in(environment)
        )
        return new, retired
