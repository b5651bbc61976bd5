"""How payments the gateway started end: a payment link's use is counted or given back.

Consumed from `gateway.events` (`collect.payment.completed|failed|cancelled|expired`).
Payments that are not the gateway's are skipped without touching the database; for the
others the inbox claim and the effect share one transaction (a redelivery changes nothing).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from api_gateway import link_store
from fluxpay_common import inbox
from fluxpay_common.messages import Message, PaymentEvent

CONSUMER = "gateway.payment_events"
ENDED_WITHOUT_PAYING = frozenset(
    {"collect.payment.failed", "collect.payment.cancelled", "collect.payment.expired"}
)


def _link_use(event: PaymentEvent) -> uuid.UUID | None:
    value = event.payment.metadata.get("payment_link_use_id")
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


async def on_event(pool: asyncpg.Pool, event: Message, _: Any = None) -> None:
    if not isinstance(event, PaymentEvent):
        return
    use_id = _link_use(event)
    if use_id is None:
        return
    async with pool.acquire() as conn, conn.transaction():
        if not await inbox.claim(conn, event.message_id, CONSUMER):
            return
        if event.type == "collect.payment.completed":
            await link_store.complete(conn, use_id, event.payment.id)
        elif event.type in ENDED_WITHOUT_PAYING and not event.late_success:
            await link_store.release(conn, use_id)
