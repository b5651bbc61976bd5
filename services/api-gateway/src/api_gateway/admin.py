"""Operator actions on merchants, used by the `fluxpay-admin` CLI. Each is audited."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, get_args

import asyncpg

from api_gateway import webhook_endpoints
from api_gateway.audit import audit
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


async def _issue_key(conn: asyncpg.Connection, merchant_id: uuid.UUID, environment: str) -> str:
    key = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO api_key (id, merchant_id, environment, key_digest, last4)"
        " VALUES ($1, $2, $3, $4, $5)",
        new_id(),
        merchant_id,
        environment,
        hash_api_key(key),
        key[-4:],
    )
    return key


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
        await audit(conn, "merchant.created", merchant_id, {"name": name})
    return NewMerchant(merchant_id, keys, secrets)


async def revoke_key(pool: asyncpg.Pool, api_key: str) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE api_key SET revoked_at = now() WHERE key_digest = $1 AND revoked_at IS NULL"
            " RETURNING merchant_id, last4",
            hash_api_key(str(uuid.UUID(api_key))),
        )
        if row is None:
            return False
        await audit(conn, "api_key.revoked", row["merchant_id"], {"last4": row["last4"]})
    return True
