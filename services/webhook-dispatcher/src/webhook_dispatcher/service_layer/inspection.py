"""`fluxpay-admin inspect`, the dispatcher's part: a payment's events (without their
bodies), each event's deliveries and every attempt made."""

from __future__ import annotations

import asyncpg

from fluxpay_common.inspection import rows_as_json
from fluxpay_common.messages import QueryReply, WebhooksInspect


async def inspect(pool: asyncpg.Pool, request: WebhooksInspect) -> QueryReply:
    async with pool.acquire() as conn:
        events = await rows_as_json(
            conn,
            "SELECT id, type, merchant_id, environment, refund_id, occurred_at, created_at,"
            " test, traceparent FROM event WHERE payment_id = $1 ORDER BY created_at, id",
            request.payment_id,
        )
        deliveries = await rows_as_json(
            conn,
            "SELECT d.*, (SELECT json_agg(row_to_json(a) ORDER BY a.attempt_number)"
            " FROM delivery_attempt a WHERE a.delivery_id = d.id) AS attempts"
            " FROM delivery d JOIN event e ON e.id = d.event_id"
            " WHERE e.payment_id = $1 ORDER BY d.created_at",
            request.payment_id,
        )
    return QueryReply(data={"events": events, "deliveries": deliveries})
