"""Webhook endpoints and secrets per environment in the gateway's schema (real PostgreSQL):
migration 0003 on older rows, creation, URL changes and rotations, and what each publishes."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import asyncpg
import pytest
from fluxpay_testing.infra import Infra

from api_gateway import admin, webhook_endpoints
from fluxpay_common.crypto import SecretBox
from fluxpay_common.db import create_pool, migrate
from fluxpay_common.messages import MerchantEndpointChanged
from fluxpay_common.outbox import add_to_outbox
from fluxpay_common.settings import DEV_SECRETS_KEY
from fluxpay_common.topology import EVENTS

MIGRATIONS = Path(str(resources.files("api_gateway") / "migrations"))
BOX = SecretBox(DEV_SECRETS_KEY)
NOW = datetime.now(UTC)


@pytest.fixture
def schema() -> str:
    return f"gateway_m{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def pool(infra: Infra, schema: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(infra.database_url, schema, min_size=1, max_size=2)
    yield pool
    await pool.execute(f"DROP SCHEMA {schema} CASCADE")
    await pool.close()


async def _announced(pool: asyncpg.Pool, merchant_id: uuid.UUID) -> list[MerchantEndpointChanged]:
    rows = await pool.fetch("SELECT body FROM outbox_message ORDER BY id")
    changes = [MerchantEndpointChanged.model_validate_json(r["body"]) for r in rows]
    return [c for c in changes if c.merchant_id == merchant_id]


async def test_migration_splits_the_endpoint_per_environment_and_removes_url_credentials(
    pool: asyncpg.Pool, schema: str, tmp_path: Path
) -> None:
    for name in ("0001_gateway.sql", "0002_secret_overlap.sql"):
        shutil.copy(MIGRATIONS / name, tmp_path / name)
    await migrate(pool, schema, tmp_path)
    merchant_id, overlap = uuid.uuid4(), NOW + timedelta(hours=5)
    await pool.execute(
        "INSERT INTO merchant (id, name, webhook_url, webhook_secrets_sealed,"
        " secret_overlap_until) VALUES ($1, 'Old', $2, $3, $4)",
        merchant_id,
        "https://user:hunter2@shop.example/h",
        ["sealed_new", "sealed_old"],
        overlap,
    )
    await pool.execute(
        "INSERT INTO audit_log (actor, action, merchant_id, details) VALUES ('x', $1, $2, $3)",
        "webhook_endpoint.updated",
        merchant_id,
        {"url": "https://user:hunter2@shop.example/h"},
    )
    published = MerchantEndpointChanged(
        merchant_id=merchant_id,
        webhook_url="https://user:hunter2@shop.example/h",
        webhook_secrets_sealed=["sealed_new"],
    )
    async with pool.acquire() as conn:
        await add_to_outbox(conn, EVENTS, webhook_endpoints.ENDPOINT_CHANGED_KEY, published)

    await migrate(pool, schema, MIGRATIONS)

    endpoints = await pool.fetch("SELECT * FROM webhook_endpoint ORDER BY environment")
    assert [(e["environment"], e["url"]) for e in endpoints] == [
        ("live", "https://shop.example/h"),
        ("test", "https://shop.example/h"),
    ]
    secrets = await pool.fetch(
        "SELECT sealed, expires_at FROM webhook_secret WHERE environment = 'live' ORDER BY id DESC"
    )
    assert [s["sealed"] for s in secrets] == ["sealed_new", "sealed_old"]
    assert secrets[0]["expires_at"] is None
    assert abs(secrets[1]["expires_at"] - overlap) < timedelta(milliseconds=1)
    audit = await pool.fetchval("SELECT details ->> 'url' FROM audit_log")
    assert audit == "https://shop.example/h"
    dumped = str([dict(r) for r in await pool.fetch("SELECT * FROM merchant")])
    assert "hunter2" not in dumped and "webhook_url" not in dumped
    [announced] = await _announced(pool, merchant_id)
    assert announced.webhook_url == "https://shop.example/h"


async def test_rotating_twice_keeps_every_secret_for_its_own_overlap_in_one_environment(
    pool: asyncpg.Pool, schema: str
) -> None:
    await migrate(pool, schema, MIGRATIONS)
    created = await admin.create_merchant(pool, BOX, "Shop", "https://shop.example/h")
    merchant_id = created.merchant_id
    assert created.webhook_secrets["test"] != created.webhook_secrets["live"]

    second, first_expires = await webhook_endpoints.rotate_secret(
        pool, BOX, merchant_id, "test", NOW
    )
    third, second_expires = await webhook_endpoints.rotate_secret(
        pool, BOX, merchant_id, "test", NOW + timedelta(hours=1)
    )

    latest = (await _announced(pool, merchant_id))[-1]
    assert latest.environment == "test" and latest.secrets is not None
    opened = [(BOX.open(s.sealed), s.expires_at) for s in latest.secrets]
    assert opened == [
        (third, None),
        (second, second_expires),
        (created.webhook_secrets["test"], first_expires),
    ]
    assert first_expires == NOW + timedelta(hours=24)
    live = [c for c in await _announced(pool, merchant_id) if c.environment == "live"]
    assert len(live) == 1, "the live endpoint was announced once, at creation, untouched since"
    assert live[0].secrets is not None
    assert [BOX.open(s.sealed) for s in live[0].secrets] == [created.webhook_secrets["live"]]


async def test_an_expired_secret_is_dropped_at_the_next_rotation(
    pool: asyncpg.Pool, schema: str
) -> None:
    await migrate(pool, schema, MIGRATIONS)
    created = await admin.create_merchant(pool, BOX, "Shop", None)
    await webhook_endpoints.rotate_secret(pool, BOX, created.merchant_id, "live", NOW)
    later = NOW + timedelta(hours=25)
    newest, _ = await webhook_endpoints.rotate_secret(pool, BOX, created.merchant_id, "live", later)
    stored = await pool.fetchval(
        "SELECT count(*) FROM webhook_secret WHERE merchant_id = $1 AND environment = 'live'",
        created.merchant_id,
    )
    assert stored == 2, "the creation secret, expired at the second rotation, is gone"
    latest = (await _announced(pool, created.merchant_id))[-1]
    assert latest.secrets is not None and BOX.open(latest.secrets[0].sealed) == newest


async def test_a_url_change_touches_only_its_environment_and_is_audited(
    pool: asyncpg.Pool, schema: str
) -> None:
    await migrate(pool, schema, MIGRATIONS)
    created = await admin.create_merchant(pool, BOX, "Shop", "https://shop.example/h")
    await webhook_endpoints.set_url(
        pool, created.merchant_id, "test", "https://test.shop.example/h"
    )
    urls = dict(
        await pool.fetch(
            "SELECT environment, url FROM webhook_endpoint WHERE merchant_id = $1",
            created.merchant_id,
        )
    )
    assert urls == {"test": "https://test.shop.example/h", "live": "https://shop.example/h"}
    audit = await pool.fetchrow(
        "SELECT actor, environment, details FROM audit_log ORDER BY id DESC LIMIT 1"
    )
    assert (audit["actor"], audit["environment"]) == ("admin", "test")
    assert audit["details"] == {"environment": "test", "url": "https://test.shop.example/h"}
