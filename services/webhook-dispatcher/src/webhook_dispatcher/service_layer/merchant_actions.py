"""Merchant actions: replay one event, replay every failed one, send a test event.

Each runs in one transaction with its inbox record (the command's message id), so a command
redelivered after its commit changes nothing and is answered from what the first run did.
A refusal rolls the transaction back, inbox record included. Sending is the dispatcher's
job: an action only creates due deliveries and NOTIFYs it at commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC

import asyncpg

from fluxpay_common import inbox
from fluxpay_common.ids import utcnow
from fluxpay_common.logging import get_logger
from fluxpay_common.messages import QueryReply, WebhooksCommand
from webhook_dispatcher.adapters import event_log, replays, repository
from webhook_dispatcher.adapters.event_log import StoredEvent
from webhook_dispatcher.adapters.replays import LatestDelivery
from webhook_dispatcher.domain.events import event_id as event_id_of
from webhook_dispatcher.domain.events import sample_event, sample_event_body
from webhook_dispatcher.domain.merchant_views import (
    DeliveryState,
    EventSummary,
    event_summary,
    replay_answer,
)
from webhook_dispatcher.domain.replay import replay_refusal
from webhook_dispatcher.service_layer import replies
from webhook_dispatcher.service_layer.replies import Refused

log = get_logger(__name__)
CONSUMER = "webhook-dispatcher.commands"
Work = Callable[[asyncpg.Connection], Awaitable[QueryReply]]


async def _in_transaction(pool: asyncpg.Pool, work: Work) -> QueryReply:
    try:
        async with pool.acquire() as conn, conn.transaction():
            return await work(conn)
    except Refused as refusal:
        return refusal.reply


async def _refuse_unless_deliverable(
    conn: asyncpg.Connection, command: WebhooksCommand, callback_url: str | None
) -> None:
    endpoint = await repository.load_endpoint(conn, command.merchant_id, command.environment)
    refusal = replay_refusal(callback_url, endpoint)
    if refusal is not None:
        log.info("webhook_command_refused", command=command.type, refusal=refusal)
        raise Refused(replies.refused(refusal))


# ---------------------------------------------------------------- replay one event


async def replay_event(pool: asyncpg.Pool, command: WebhooksCommand) -> QueryReply:
    """A new delivery of the stored bytes (same event id), due now."""
    event_id = command.event_id
    if not event_id:
        return replies.parameter_missing("event_id")

    async def work(conn: asyncpg.Connection) -> QueryReply:
        await replays.lock_replays(conn, command.merchant_id, command.environment)
        event = await event_log.find_event(conn, event_id, command.merchant_id, command.environment)
        if event is None:
            raise Refused(replies.event_not_found(event_id))
        latest = await replays.latest_delivery(conn, event.id)
        if not await inbox.claim(conn, command.message_id, CONSUMER) and latest is not None:
            return QueryReply(data=replay_answer(event.id, latest.state))
        await _refuse_unless_deliverable(conn, command, latest.callback_url if latest else None)
        delivery = await _schedule_replay(conn, event, latest, command)
        await repository.notify_dispatcher(conn)
        log.info("webhook_replay_scheduled", event_id=event.id, delivery_id=str(delivery.id))
        return QueryReply(data=replay_answer(event.id, delivery))

    return await _in_transaction(pool, work)


async def _schedule_replay(
    conn: asyncpg.Connection,
    event: StoredEvent,
    latest: LatestDelivery | None,
    command: WebhooksCommand,
) -> DeliveryState:
    """A delivery still pending is brought forward rather than doubled: a double click, or a
    replay during the retry schedule, sends the event once."""
    if latest is not None and latest.state.status == "pending":
        await replays.make_due_now(conn, latest.state.id)
        return latest.state
    callback_url = latest.callback_url if latest else None
    return await replays.insert_replay(conn, event, callback_url, command.message_id)


# ---------------------------------------------------------------- replay every failed event


async def replay_failed(pool: asyncpg.Pool, command: WebhooksCommand) -> QueryReply:
    """Every event since `since` whose latest delivery is failed or dead, test events aside."""
    since = command.since
    if since is None:
        return replies.parameter_missing("since")
    since = since if since.tzinfo else since.replace(tzinfo=UTC)

    async def work(conn: asyncpg.Connection) -> QueryReply:
        await replays.lock_replays(conn, command.merchant_id, command.environment)
        if not await inbox.claim(conn, command.message_id, CONSUMER):
            replayed = await replays.replays_requested_by(conn, command.message_id)
            return QueryReply(data=_replayed(replayed))
        # The merchant fixes a disabled endpoint first: replaying into it would only fail again.
        await _refuse_unless_deliverable(conn, command, None)
        replayed = await replays.replay_failed(
            conn, command.merchant_id, command.environment, since, command.message_id
        )
        if replayed:
            await repository.notify_dispatcher(conn)
        log.info("webhook_failed_replayed", replayed=replayed, since=since.isoformat())
        return QueryReply(data=_replayed(replayed))

    return await _in_transaction(pool, work)


def _replayed(count: int) -> dict[str, object]:
    return {"object": "event_replay", "replayed": count}


# ---------------------------------------------------------------- send a test event


async def send_test(pool: asyncpg.Pool, command: WebhooksCommand) -> QueryReply:
    """A sample `collect.payment.completed`, stored, signed and delivered like any event.

    Its id is the command's message id, so a redelivered command finds it again.
    """

    async def work(conn: asyncpg.Connection) -> QueryReply:
        message = sample_event(
            command.merchant_id, command.environment, command.message_id, utcnow()
        )
        if await inbox.claim(conn, command.message_id, CONSUMER):
            await _refuse_unless_deliverable(conn, command, None)
            await repository.insert_event(conn, message, sample_event_body(message), test=True)
            await repository.insert_delivery(
                conn, message, status="pending", next_attempt_at=utcnow()
            )
            await repository.notify_dispatcher(conn)
        return await _test_event_answer(conn, command, event_id_of(message))

    return await _in_transaction(pool, work)


async def _test_event_answer(
    conn: asyncpg.Connection, command: WebhooksCommand, event_id: str
) -> QueryReply:
    stored = await event_log.find_event(conn, event_id, command.merchant_id, command.environment)
    latest = await replays.latest_delivery(conn, event_id)
    # Created in this transaction or by the committed first run of this very command.
    assert stored is not None and latest is not None, "test event without its delivery"
    summary = EventSummary(
        id=stored.id,
        type=stored.type,
        environment=stored.environment,
        occurred_at=stored.occurred_at,
        test=stored.test,
        delivery=latest.state,
    )
    return QueryReply(data=event_summary(summary))
