"""One handler per consumed message type; each message's effect and inbox record commit together.

Payment and refund events become a stored `WebhookEvent` body and a delivery, written with
the inbox claim in one statement (atomic on its own: no BEGIN/COMMIT round trips, three
events per payment make this the dispatcher's hottest path); the gateway's endpoint changes
are replicated in a transaction. Sending happens after the commit, never inside a consumer's
transaction: a batch's deliveries are inserted already leased, up to the free sending slots,
and handed to the dispatcher in this process for their first attempt (no claim query); the
rest are left due for the dispatcher's claim loop, which also takes over a lease whose
process died once it expires.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import asyncpg

from fluxpay_common import inbox
from fluxpay_common.ids import utcnow
from fluxpay_common.logging import get_logger
from fluxpay_common.messages import DueEvent, MerchantEndpointChanged, PaymentEvent, RefundEvent
from webhook_dispatcher.adapters import repository
from webhook_dispatcher.adapters.delivery_store import ClaimedDelivery
from webhook_dispatcher.domain.delivery import (
    DeliveryStatus,
    Skip,
    Target,
    Wait,
    resolve_target,
)
from webhook_dispatcher.domain.events import WebhookSource, event_body, event_id

log = get_logger(__name__)
CONSUMER = "webhook-dispatcher"


class FirstAttempts(Protocol):
    """The dispatcher's door for deliveries leased when they are inserted."""

    def slots(self) -> contextlib.AbstractContextManager[int]:
        """Sending slots held for one insert (0 when the dispatcher is not running)."""
        ...

    async def start(self, jobs: Sequence[ClaimedDelivery], held_back: set[uuid.UUID]) -> None:
        """Attempt `jobs` now; `held_back`: merchants with deliveries left to the claim loop."""
        ...


@dataclass(frozen=True)
class HandlerConfig:
    endpoint_wait: timedelta
    # Without it (tests, tools) every new delivery is left to the claim loop.
    first_attempts: FirstAttempts | None = None
    endpoint_concurrency: int = 4
    lease_seconds: float = 60.0


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
    status: DeliveryStatus
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


async def on_webhook_sources(
    pool: asyncpg.Pool, messages: Sequence[WebhookSource], config: HandlerConfig
) -> None:
    """`on_webhook_source` for a run of events, in one statement (endpoints read in it); the
    new deliveries it leased are attempted at once, after the commit."""
    unique: list[WebhookSource] = []
    seen: set[uuid.UUID] = set()
    for m in messages:  # a publisher's duplicate may share the batch: keep the first
        if m.message_id not in seen:
            seen.add(m.message_id)
            unique.append(m)
    slots = config.first_attempts.slots() if config.first_attempts else contextlib.nullcontext(0)
    with slots as free:
        recorded = await repository.record_events(
            pool,
            [(m, event_body(m)) for m in unique],
            consumer=CONSUMER,
            wait_for_endpoint=config.endpoint_wait > timedelta(0),
            lease=repository.Lease(free, config.endpoint_concurrency, config.lease_seconds),
        )
        leased = [_leased_job(d) for d in recorded.deliveries if d.claim_token is not None]
        held_back = {
            d.message.merchant_id
            for d in recorded.deliveries
            if d.status == "pending" and d.claim_token is None
        }
        if config.first_attempts is not None and (leased or held_back):
            await config.first_attempts.start(leased, held_back)
    for m in unique:
        if m.message_id not in recorded.claimed:
            log.info("message_already_handled", message_id=m.message_id)
    for d in recorded.deliveries:
        if d.status != "pending":
            log.info("webhook_not_delivered", event_type=d.message.type, status=d.status)


def _leased_job(delivery: repository.NewDelivery) -> ClaimedDelivery:
    assert delivery.claim_token is not None
    message = delivery.message
    return ClaimedDelivery(
        id=delivery.id,
        claim_token=delivery.claim_token,
        event_id=event_id(message),
        event_type=message.type,
        merchant_id=message.merchant_id,
        environment=message.environment,
        callback_url=message.callback_url,
        attempt_count=0,
        created_at=delivery.created_at,
        body=delivery.body,
        endpoint=delivery.endpoint,
        traceparent=delivery.traceparent,
    )


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
