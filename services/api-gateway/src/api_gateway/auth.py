"""Merchant authentication: `Authorization: Bearer <key>` or `X-API-Key: <key>`.

Keys are UUIDs (the seed's security scheme); only their SHA-256 digest is stored, and the
lookup is by digest, so no stored secret is ever compared byte by byte with input.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from api_gateway.errors import ApiError
from api_gateway.roles import Role
from fluxpay_common.crypto import hash_api_key
from fluxpay_common.ids import parse_uuid


@dataclass(frozen=True)
class Principal:
    merchant_id: uuid.UUID
    environment: str
    key_id: uuid.UUID | None = None
    role: Role = Role.FULL


def presented_key(authorization: str | None, x_api_key: str | None) -> str:
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401, "api_key_invalid", "Use 'Authorization: Bearer <API key>' or 'X-API-Key'."
            )
        return token.strip()
    if x_api_key:
        return x_api_key.strip()
    raise ApiError(
        401,
        "api_key_missing",
        "No API key: send 'Authorization: Bearer <API key>' or 'X-API-Key'.",
        headers={"WWW-Authenticate": "Bearer"},
    )


# A key's last use is recorded at most this often: one write a minute, not one a request.
LAST_USED_RESOLUTION = "60 seconds"


async def authenticate(pool: asyncpg.Pool, key: str) -> Principal:
    if parse_uuid(key) is None:
        raise ApiError(401, "api_key_invalid", "This API key is malformed.")
    row = await pool.fetchrow(
        "SELECT id, merchant_id, environment, role, revoked_at, expires_at <= now() AS expired,"
        f" last_used_at IS NULL OR last_used_at < now() - interval '{LAST_USED_RESOLUTION}'"
        " AS stale FROM api_key WHERE key_digest = $1",
        hash_api_key(str(uuid.UUID(key))),
    )
    if row is None:
        raise ApiError(401, "api_key_invalid", "This API key is not valid.")
    if row["revoked_at"] is not None:
        raise ApiError(401, "api_key_revoked", "This API key has been revoked.")
    if row["expired"]:
        raise ApiError(401, "api_key_expired", "This API key has expired (or was rotated).")
    if row["stale"]:
        await _mark_used(pool, row["id"])
    return Principal(row["merchant_id"], row["environment"], row["id"], Role(row["role"]))


async def _mark_used(pool: asyncpg.Pool, key_id: uuid.UUID) -> None:
    # The condition again: of concurrent requests, one writes; the others match no row.
    await pool.execute(
        "UPDATE api_key SET last_used_at = now() WHERE id = $1 AND (last_used_at IS NULL"
        f" OR last_used_at < now() - interval '{LAST_USED_RESOLUTION}')",
        key_id,
    )
