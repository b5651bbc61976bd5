"""Migration 0003 on a schema holding endpoints from before it (no worker needed)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from importlib import resources
from pathlib import Path

import asyncpg
import pytest
from fluxpay_testing.infra import Infra

from fluxpay_common.db import create_pool, migrate
from fluxpay_common.ids import utcnow

MIGRATIONS = Path(str(resources.files("webhook_dispatcher") / "migrations"))


@pytest.fixture
def schema() -> str:
    return f"webhooks_m{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def pool(infra: Infra, schema: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(infra.database_url, schema, min_size=1, max_size=2)
    yield pool
    await pool.execute(f"DROP SCHEMA {schema} CASCADE")
    await pool.close()


async def test_old_endpoints_serve_both_environments_and_lose_url_credentials(
    pool: asyncpg.Pool, schema: str, tmp_path: Path
) -> None:
    for name in ("0001_webhooks.sql", "0002_merchant_commands.sql"):
        shutil.copy(MIGRATIONS / name, tmp_path / name)
    await migrate(pool, schema, tmp_path)
    plain, with_credentials = uuid.uuid4(), uuid.uuid4()
    overlap = utcnow() + timedelta(hours=3)
    insert = (
        "INSERT INTO endpoint (merchant_id, url, secrets_sealed, secret_overlap_until,"
        " changed_at) VALUES ($1, $2, $3, $4, now())"
    )
    await pool.execute(insert, plain, "https://shop.example/h", ["new", "old"], overlap)
    await pool.execute(insert, with_credentials, "https://u:p%40ss@shop.example/h", ["s"], None)

    await migrate(pool, schema, MIGRATIONS)

    rows = await pool.fetch("SELECT * FROM endpoint ORDER BY merchant_id, environment")
    by_key = {(r["merchant_id"], r["environment"]): r for r in rows}
    assert len(rows) == 4
    for environment in ("test", "live"):
        kept = by_key[(plain, environment)]
        assert kept["url"] == "https://shop.example/h" and kept["disabled_at"] is None
        assert kept["secrets_sealed"] == ["new", "old"]
        assert kept["secrets_expire_at"][0] is None
        assert abs(kept["secrets_expire_at"][1] - overlap) < timedelta(milliseconds=1)
        redacted = by_key[(with_credentials, environment)]
        assert redacted["url"] == "https://shop.example/h"
        assert redacted["disabled_at"] is not None and "credentials" in redacted["disabled_reason"]
    assert not any("p%40ss" in str(dict(r)) for r in rows)
