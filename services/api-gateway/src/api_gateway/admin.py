"""Operator actions on merchants, used by the `fluxpay-admin` CLI. Each is audited."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, get_args

import asyncpg

from api_gateway import api_keys, audit, webhook_endpoints
from api_gateway.roles import Role
from fluxpay_common.crypto import SecretBox, hash_api_key
from fluxpay_common.ids import new_id
from fluxpay_common.messages import Environment

ENVIRONMENTS: tuple[Environment, ...] = get_args(Environment)


@dataclass(frozen=True)
class NewMerchant:
    merchant_id: uuid.UUID
    api_keys: dict[Environment, str]
    # One per environment, distinct: a test secret never verifies a live event.
    webhook_secrets: dict[Environment, str]

    def as_json(self) -> dict[str, Any]:
        return {
            "merchant_id": str(self.merchant_id),
            "api_keys": self.api_keys,
            "webhook_secrets": self.webhook_secrets,
        }


async def _audit(
    conn: asyncpg.Connection,
    action: str,
    merchant_id: uuid.UUID,
    details: dict[str, Any],
    environment: str | None = None,
) -> None:
    """Recorded as the request's API key when called from the API, else as `admin`."""
    actor = audit.current_actor() if environment is None else audit.actor_in(environment)
    await audit.record(conn, action, merchant_id, details, actor)


async def _issue_key(conn: asyncpg.Connection, merchant_id: uuid.UUID, environment: str) -> str:
    issued = await api_keys.issue(conn, merchant_id, environment, "default", Role.FULL)
    return issued.secret


async def create_merchant(
    pool: asyncpg.Pool, box: SecretBox, name: str, webhook_url: str | None
) -> NewMerchant:
    """A merchant with a test and a live key, and a test and a live webhook endpoint (same
    URL, already checked for both environments) with distinct secrets, shown once."""
    merchant_id = new_id()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO merchant (id, name) VALUES ($1, $2)", merchant_id, name)
        keys = {env: await _issue_key(conn, merchant_id, env) for env in ENVIRONMENTS}
        secrets = {
            env: await webhook_endpoints.create_endpoint(conn, box, merchant_id, env, webhook_url)
            for env in ENVIRONMENTS
        }
        await _audit(conn, "merchant.created", merchant_id, {"name": name})
    return NewMerchant(merchant_id, keys, secrets)


async def revoke_key(pool: asyncpg.Pool, api_key: str) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE api_key SET revoked_at = now() WHERE key_digest = $1 AND revoked_at IS NULL"
            " RETURNING id, merchant_id, environment, last4",
            hash_api_key(str(uuid.UUID(api_key))),
        )
        if row is None:
            return False
        details = {"api_key_id": str(row["id"]), "last4": row["last4"]}
        await _audit(conn, "api_key.revoked", row["merchant_id"], details, row["environment"])
    return True
