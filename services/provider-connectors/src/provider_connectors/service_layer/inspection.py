"""`fluxpay-admin inspect`, a connector's part: the payment's attempt at this PSP (status,
references, next poll, update sequence), its refunds and the PSP callbacks received."""

from __future__ import annotations

import asyncpg

from fluxpay_common.inspection import rows_as_json
from fluxpay_common.messages import ConnectorInspect, QueryReply


async def inspect(pool: asyncpg.Pool, provider: str, request: ConnectorInspect) -> QueryReply:
    async with pool.acquire() as conn:
        attempts = await rows_as_json(
            conn,
            "SELECT * FROM provider_attempt WHERE payment_id = $1 AND provider = $2",
            request.payment_id,
            provider,
        )
        refunds = await rows_as_json(
            conn,
            "SELECT * FROM provider_refund WHERE payment_id = $1 AND provider = $2",
            request.payment_id,
            provider,
        )
        callbacks = await rows_as_json(
            conn,
            "SELECT * FROM provider_events WHERE payment_id = $1 AND provider = $2 ORDER BY id",
            request.payment_id,
            provider,
        )
    return QueryReply(
        data={
            "provider": provider,
            "attempts": attempts,
            "refunds": refunds,
            "callbacks": callbacks,
        }
    )
