"""One handler per consumed message type; each message's effect and inbox record commit together.

Payment and refund events become a stored `WebhookEvent` body and a delivery, written with
the inbox claim in one statement (atomic on its own: no BEGIN/COMMIT round trips, three
events per payment make this the dispatcher's hottest path); the gateway's endpoint changes
are replicated in a transaction. Sending happens later, in the dispatcher loop, never inside
a consumer's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from fluxpay_common import inbox
from fluxpay_common.ids import utcnow
from fluxpay_common.logging import get_logger
from fluxpay_common.messages import DueEvent, MerchantEndpointChanged, PaymentEvent, RefundEvent
from webhook_dispatcher.adapters import repository
from webhook_dispatcher.domain.delivery import (
    DeliveryStatus,
    Endpoint,
    Skip,
    Target,
    Wait,
    resolve_target,
)
from webhook_dispatcher.domain.events import WebhookSource, event_body

log = get_logger(__name__)
CONSUMER = "webhook-dispatcher"


@dataclass(frozen=True)
class HandlerConfig:
    endpoint_wait: timedelta


async def on_webhook_source(
    pool: asyncpg.Pool, message: WebhookSource, config: HandlerConfig
) -> None:
    """Store the event body once and create its delivery (or record why there is none).

    The endpoint is read first, outside the write: under READ COMMITTED a read inside the
    transaction would not hold it either, and a change arriving after the read wakes or
    re-routes the delivery when it is attempted (the attempt resolves the target again).
    """
    endpoint = await repository.load_endpoint(pool, message.merchant_id, message.environment)
    route = resolve_target(message.callback_url, endpoint, timedelta(0), config.endpoint_wait)
    match route:
        case Target() | Wait():
            status, next_attempt_at, reason = "pending", utcnow(), None
        case Skip(status=status, reason=reason):
            next_attempt_at = None
    recorded = await repository.record_event(
        pool,
        message,
        event_body(message),
        consumer=CONSUMER,
        status=status,
        next_attempt_at=next_attempt_at,
        last_error=reason,
    )
    if not recorded:
        log.info("message_already_handled")
    elif isinstance(route, Skip):
        log.info("webhook_not_delivered", event_type=message.type, status=status)


def _delivery_start(
    message: WebhookSource, endpoint: Endpoint | None, config: HandlerConfig
) -> tuple[DeliveryStatus, datetime | None, str | None]:
    route = resolve_target(message.callback_url, endpoint, timedelta(0), config.endpoint_wait)
    match route:
        case Target() | Wait():
            return "pending", utcnow(), None
        case Skip(status=status, reason=reason):
            return status, None, reason


async def on_webhook_sources(
    pool: asyncpg.Pool, messages: Sequence[WebhookSource], config: HandlerConfig
) -> None:
    """`on_webhook_source` for a run of events: one read of their endpoints, one write."""
    unique: list[WebhookSource] = []
    seen: set[uuid.UUID] = set()
    for m in messages:  # a publisher's duplicate may share the batch: keep the first
        if m.message_id not in seen:
            seen.add(m.message_id)
            unique.append(m)
    keys = list({(m.merchant_id, m.environment) for m in unique})
    endpoints = await repository.load_endpoints(pool, keys)
    events = [
        repository.NewEvent(
            m,
            event_body(m),
            *_delivery_start(m, endpoints.get((m.merchant_id, m.environment)), config),
        )
        for m in unique
    ]
    claimed = await repository.record_events(pool, events, consumer=CONSUMER)
    for event in events:
        if event.message.message_id not in claimed:
            log.info("message_already_handled", message_id=event.message.message_id)
        elif event.status != "pending":
            log.info("webhook_not_delivered", event_type=event.message.type, status=event.status)


async def on_endpoint_changed(
    pool: asyncpg.Pool, message: MerchantEndpointChanged, config: HandlerConfig
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        if not await inbox.claim(conn, message.message_id, CONSUMER):
            log.info("message_already_handled")
            return
        applied = await repository.upsert_endpoint(conn, message)
        if not applied:
            log.info("endpoint_change_superseded", merchant_id=str(message.merchant_id))
            return
        if await repository.wake_waiting_deliveries(conn, message.merchant_id, applied):
            await repository.notify_dispatcher(conn)


Handler = Callable[[asyncpg.Pool, Any, HandlerConfig], Awaitable[None]]

EVENT_HANDLERS: dict[type, Handler] = {
    PaymentEvent: on_webhook_source,
    RefundEvent: on_webhook_source,
    DueEvent: on_webhook_source,
    MerchantEndpointChanged: on_endpoint_changed,
}


async def handle(pool: asyncpg.Pool, message: Any, config: HandlerConfig) -> None:
    """The message's effect and its inbox record commit together, or neither does."""
    await EVENT_HANDLERS[type(message)](pool, message, config)


async def handle_batch(pool: asyncpg.Pool, messages: Sequence[Any], config: HandlerConfig) -> None:
    """Messages in delivery order: each run of events in one statement, an endpoint change
    on its own in between (the events after it see the change, as one by one they would)."""
    run: list[WebhookSource] = []
    for message in messages:
        if isinstance(message, PaymentEvent | RefundEvent):
            run.append(message)
            continue
        if run:
            await on_webhook_sources(pool, run, config)
            run = []
        await handle(pool, message, config)
    if run:
        await on_webhook_sources(pool, run, config)
