"""`fluxpay_provider_review_queue{provider}`: attempts waiting for an operator's review.

Sampled every few seconds from the connector's own `provider_review` table; a schema
without that table (before its migration) leaves the gauge unset rather than failing.
"""

from __future__ import annotations

import asyncpg

from fluxpay_common.logging import get_logger
from fluxpay_common.metrics import PROVIDER_REVIEW_QUEUE

log = get_logger(__name__)
SAMPLE_SECONDS = 15.0


async def sample_review_queue(pool: asyncpg.Pool, provider: str) -> None:
    try:
        async with pool.acquire() as conn:
            if await conn.fetchval("SELECT to_regclass('provider_review')") is None:
                return
            waiting = await conn.fetchval(
                "SELECT count(*) FROM provider_review WHERE provider = $1 AND resolved_at IS NULL",
                provider,
            )
    except (asyncpg.PostgresError, OSError) as exc:
        log.debug("review_queue_not_sampled", error=repr(exc))
        return
    PROVIDER_REVIEW_QUEUE.labels(provider).set(waiting)
