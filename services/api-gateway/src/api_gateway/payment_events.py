"""How payments the gateway started end: a payment link's use is counted or given back;
a due is paid.

Consumed from `gateway.events`, bound to `gateway.payment.*`: the orchestrator publishes
there a copy of `collect.payment.completed|failed|cancelled|expired` only for payments whose
metadata names a link use or a due (`topology.GATEWAY_METADATA_KEYS`). Anything else that
arrives is still skipped without touching the database; for the others the inbox claim and
the effect share one transaction (a redelivery changes nothing).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from api_gateway import dues_store, link_store
from fluxpay_common import inbox
from fluxpay_common.messages import Message, PaymentEvent
from fluxpay_common.topology import DUE_KEY, PAYMENT_LINK_USE_KEY

CONSUMER = "gateway.payment_events"
ENDED_WITHOUT_PAYING = frozenset(
    {"collect.payment.failed", "collect.payment.cancelled", "collect.payment.expired"}
)


def _metadata_id(event: PaymentEvent, name: str) -> uuid.UUID | None:
    value = event.payment.metadata.get(name)
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


async def on_event(pool: asyncpg.Pool, event: Message, _: Any = None) -> None:
    if not isinstance(event, PaymentEvent):
        return
    use_id = _metadata_id(event, PAYMENT_LINK_USE_KEY)
    due_id = _metadata_id(event, DUE_KEY)
    if use_id is None and due_id is None:
        return
    async with pool.acquire() as conn, conn.transaction():
        if not await inbox.claim(conn, event.message_id, CONSUMER):
            return
        completed = event.type == "collect.payment.completed"
        if use_id is not None and completed:
            await link_store.complete(conn, use_id, event.payment.id)
        elif use_id is not None and event.type in ENDED_WITHOUT_PAYING:
            await link_store.release(conn, use_id)
        if due_id is not None and completed:
            await dues_store.mark_paid(conn, due_id)
