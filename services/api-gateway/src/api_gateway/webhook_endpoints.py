"""A merchant's webhook endpoints, one per environment, and their signing secrets.

Test and live each have their own URL and secrets, as Stripe's test and live endpoints: an
API key reads and changes only its own environment's. A secret is stored sealed (the
dispatcher must read it back to sign); a rotation gives the previous secret 24 hours of
overlap of its own, so every secret still inside its overlap keeps signing. Every change is
published to the dispatcher (`MerchantEndpointChanged`, through the outbox, in the same
transaction) and audited.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg

from api_gateway import audit
from fluxpay_common.crypto import SecretBox, new_webhook_secret
from fluxpay_common.messages import Environment, MerchantEndpointChanged, SealedSecret
from fluxpay_common.outbox import add_to_outbox
from fluxpay_common.topology import EVENTS

ENDPOINT_CHANGED_KEY = "merchant.endpoint_changed"
SECRET_OVERLAP = timedelta(hours=24)


async def create_endpoint(
    conn: asyncpg.Connection,
    box: SecretBox,
    merchant_id: uuid.UUID,
    environment: Environment,
    url: str | None,
) -> str:
    """The environment's endpoint with a first secret, returned once (caller's transaction)."""
    secret = new_webhook_secret()
    await conn.execute(
        "INSERT INTO webhook_endpoint (merchant_id, environment, url) VALUES ($1, $2, $3)",
        merchant_id,
        environment,
        url,
    )
    await _add_secret(conn, merchant_id, environment, box.seal(secret))
    await _announce(conn, merchant_id, environment)
    return secret


async def set_url(
    pool: asyncpg.Pool, merchant_id: uuid.UUID, environment: Environment, url: str
) -> None:
    """The URL of one environment's endpoint (already checked against the SSRF policy)."""
    async with pool.acquire() as conn, conn.transaction():
        await _lock(conn, merchant_id, environment)
        await conn.execute(
            "UPDATE webhook_endpoint SET url = $3, updated_at = now()"
            " WHERE merchant_id = $1 AND environment = $2",
            merchant_id,
            environment,
            url,
        )
        await _announce(conn, merchant_id, environment)
        details = {"environment": environment, "url": url}
        await audit.record(
            conn, "webhook_endpoint.updated", merchant_id, details, audit.actor_in(environment)
        )


async def rotate_secret(
    pool: asyncpg.Pool,
    box: SecretBox,
    merchant_id: uuid.UUID,
    environment: Environment,
    now: datetime,
) -> tuple[str, datetime]:
    """A new secret, shown once, and until when the one it replaces keeps signing.

    Secrets replaced earlier keep their own expiry; those already expired are deleted.
    """
    secret, overlap_until = new_webhook_secret(), now + SECRET_OVERLAP
    async with pool.acquire() as conn, conn.transaction():
        await _lock(conn, merchant_id, environment)
        await conn.execute(
            "DELETE FROM webhook_secret"
            " WHERE merchant_id = $1 AND environment = $2 AND expires_at <= $3",
            merchant_id,
            environment,
            now,
        )
        await conn.execute(
            "UPDATE webhook_secret SET expires_at = $3"
            " WHERE merchant_id = $1 AND environment = $2 AND expires_at IS NULL",
            merchant_id,
            environment,
            overlap_until,
        )
        await _add_secret(conn, merchant_id, environment, box.seal(secret))
        await _announce(conn, merchant_id, environment)
        details = {"environment": environment}
        await audit.record(
            conn, "webhook_secret.rotated", merchant_id, details, audit.actor_in(environment)
        )
    return secret, overlap_until


async def _lock(conn: asyncpg.Connection, merchant_id: uuid.UUID, environment: str) -> None:
    """Changes of one endpoint are serialized, so they reach the dispatcher in order."""
    await conn.execute(
        "SELECT 1 FROM webhook_endpoint WHERE merchant_id = $1 AND environment = $2 FOR UPDATE",
        merchant_id,
        environment,
    )


async def _add_secret(
    conn: asyncpg.Connection, merchant_id: uuid.UUID, environment: str, sealed: str
) -> None:
    await conn.execute(
        "INSERT INTO webhook_secret (merchant_id, environment, sealed) VALUES ($1, $2, $3)",
        merchant_id,
        environment,
        sealed,
    )


async def _announce(
    conn: asyncpg.Connection, merchant_id: uuid.UUID, environment: Environment
) -> None:
    """Publish the endpoint as it now is: its URL and every secret that still signs."""
    url = await conn.fetchval(
        "SELECT url FROM webhook_endpoint WHERE merchant_id = $1 AND environment = $2",
        merchant_id,
        environment,
    )
    rows = await conn.fetch(
        "SELECT sealed, expires_at FROM webhook_secret"
        " WHERE merchant_id = $1 AND environment = $2"
        " AND (expires_at IS NULL OR expires_at > now()) ORDER BY id DESC",
        merchant_id,
        environment,
    )
    secrets = [SealedSecret(sealed=r["sealed"], expires_at=r["expires_at"]) for r in rows]
    expiries = [s.expires_at for s in secrets if s.expires_at is not None]
    change = MerchantEndpointChanged(
        merchant_id=merchant_id,
        environment=environment,
        webhook_url=url,
        secrets=secrets,
        # For readers of the contract's first fields: every secret, the latest expiry.
        webhook_secrets_sealed=[s.sealed for s in secrets],
        secret_overlap_until=max(expiries, default=None),
    )
    await add_to_outbox(conn, EVENTS, ENDPOINT_CHANGED_KEY, change)
