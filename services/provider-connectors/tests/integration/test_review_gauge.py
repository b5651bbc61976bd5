"""The review-queue gauge counts a provider's unresolved reviews, and stays unset while the
`provider_review` table does not exist (a schema before the review queue's migration)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fluxpay_testing.infra import Infra
from prometheus_client import REGISTRY

from fluxpay_common.db import create_pool
from provider_connectors.service_layer.review_gauge import sample_review_queue


def _gauge(provider: str) -> float | None:
    return REGISTRY.get_sample_value("fluxpay_provider_review_queue", {"provider": provider})


async def test_the_gauge_counts_unresolved_reviews_once_the_table_exists(infra: Infra) -> None:
    # A schema of its own: the connector's real table may or may not exist in this run.
    schema, provider = f"gauge_{uuid.uuid4().hex[:8]}", f"gauge-{uuid.uuid4().hex[:6]}"
    pool = await create_pool(infra.database_url, schema, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await conn.execute(f"CREATE SCHEMA {schema}")
        await sample_review_queue(pool, provider)
        assert _gauge(provider) is None
        async with pool.acquire() as conn:
            # The shape the review queue's migration gives it (issue 13), reduced to what counts.
            await conn.execute(
                "CREATE TABLE provider_review (payment_id uuid PRIMARY KEY,"
                " provider text NOT NULL, resolved_at timestamptz)"
            )
            for resolved in (None, None, datetime.now(UTC)):
                await conn.execute(
                    "INSERT INTO provider_review (payment_id, provider, resolved_at)"
                    " VALUES ($1, $2, $3)",
                    uuid.uuid4(),
                    provider,
                    resolved,
                )
        await sample_review_queue(pool, provider)
        assert _gauge(provider) == 2
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await pool.close()
