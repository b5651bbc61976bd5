"""Operator actions on merchants, used by the `fluxpay-admin` CLI. Each is audited."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from api_gateway import api_keys, audit
from api_gateway.roles import Role
from fluxpay_common.crypto import SecretBox, hash_api_key, new_webhook_secret
from fluxpay_common.ids import new_id
from fluxpay_common.messages import MerchantEndpointChanged
from fluxpay_common.outbox import add_to_outbox
from fluxpay_common.topology import EVENTS

ENDPOINT_CHANGED_KEY = "merchant.endpoint_changed"


@dataclass(frozen=True)
class NewMerchant:
    merchant_id: uuid.UUID
    api_keys: dict[str, str]
    webhook_secret: str

    def as_json(self) -> dict[str, Any]:
        return {
            "merchant_id": str(self.merchant_id),
            "api_keys": self.api_keys,
            "webhook_secret": self.webhook_secret,
        }


async def _audit(
    conn: asyncpg.Connection,
    action: str,
    merchant_id: uuid.UUID,
    details: dict[str, Any],
    environment: str | None = None,
) -> None:
    """Recorded as the request's API key when called from the API, else as `admin`."""
    actor = audit.current_actor()
    if environment is not None:
        actor = audit.Actor(actor.key_id, environment, actor.request_id)
    await audit.record(conn, action, merchant_id, details, actor)


async def _issue_key(conn: asyncpg.Connection, merchant_id: uuid.UUID, environment: str) -> str:
    issued = await api_keys.issue(conn, merchant_id, environment, "default", Role.FULL)
    return issued.secret


async def create_merchant(
    pool: asyncpg.Pool, box: SecretBox, name: str, webhook_url: str | None
) -> NewMerchant:
    """A merchant with one test and one live key and a webhook secret, shown once."""
    merchant_id = new_id()
    secret = new_webhook_secret()
    sealed = box.seal(secret)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO merchant (id, name, webhook_url, webhook_secrets_sealed)"
            " VALUES ($1, $2, $3, $4)",
            merchant_id,
            name,
            webhook_url,
            [sealed],
        )
        keys = {env: await _issue_key(conn, merchant_id, env) for env in ("test", "live")}
        await add_to_outbox(
            conn,
            EVENTS,
            ENDPOINT_CHANGED_KEY,
            MerchantEndpointChanged(
                merchant_id=merchant_id, webhook_url=webhook_url, webhook_secrets_sealed=[sealed]
            ),
        )
        await _audit(conn, "merchant.created", merchant_id, {"name": name})
    return NewMerchant(merchant_id, keys, secret)


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


async def _announce_endpoint(conn: asyncpg.Connection, merchant_id: uuid.UUID) -> None:
    row = await conn.fetchrow(
        "SELECT webhook_url, webhook_secrets_sealed, secret_overlap_until FROM merchant"
        " WHERE id = $1",
        merchant_id,
    )
    await add_to_outbox(
        conn,
        EVENTS,
        ENDPOINT_CHANGED_KEY,
        MerchantEndpointChanged(
            merchant_id=merchant_id,
            webhook_url=row["webhook_url"],
            webhook_secrets_sealed=list(row["webhook_secrets_sealed"]),
            secret_overlap_until=row["secret_overlap_until"],
        ),
    )


async def set_webhook_url(pool: asyncpg.Pool, merchant_id: uuid.UUID, url: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE merchant SET webhook_url = $2 WHERE id = $1", merchant_id, url)
        await _announce_endpoint(conn, merchant_id)
        await _audit(conn, "webhook_endpoint.updated", merchant_id, {"url": url})


async def rotate_webhook_secret(
    pool: asyncpg.Pool, box: SecretBox, merchant_id: uuid.UUID, overlap_until: Any
) -> str:
    """The new secret signs from now on; the previous one also signs until `overlap_until`."""
    secret = new_webhook_secret()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE merchant SET webhook_secrets_sealed = ARRAY[$2, webhook_secrets_sealed[1]],"
            " secret_overlap_until = $3 WHERE id = $1",
            merchant_id,
            box.seal(secret),
            overlap_until,
        )
        await _announce_endpoint(conn, merchant_id)
        await _audit(conn, "webhook_secret.rotated", merchant_id, {})
    return secret
