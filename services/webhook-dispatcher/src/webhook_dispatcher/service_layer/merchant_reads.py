"""Merchant reads: the event list, one event with its delivery log, the endpoint's state."""

from __future__ import annotations

import asyncpg

from fluxpay_common.ids import utcnow
from fluxpay_common.messages import QueryReply, WebhooksCommand
from webhook_dispatcher.adapters import event_log
from webhook_dispatcher.domain.merchant_views import endpoint_view, event_detail, event_list
from webhook_dispatcher.service_layer import replies

MAX_PAGE = 100


async def list_events(pool: asyncpg.Pool, command: WebhooksCommand) -> QueryReply:
    if not 1 <= command.limit <= MAX_PAGE:
        return replies.parameter_invalid("limit", f"'limit' must be between 1 and {MAX_PAGE}.")
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        after = None
        if command.starting_after:
            after = await event_log.find_event(
                conn, command.starting_after, command.merchant_id, command.environment
            )
            if after is None:
                return replies.invalid_starting_after(command.starting_after)
        page, has_more = await event_log.list_events(
            conn,
            command.merchant_id,
            command.environment,
            limit=command.limit,
            after=after,
            event_type=command.event_type,
        )
    return QueryReply(data=event_list(page, has_more))


async def get_event(pool: asyncpg.Pool, command: WebhooksCommand) -> QueryReply:
    if not command.event_id:
        return replies.parameter_missing("event_id")
    # One snapshot: the deliveries and their attempts agree with each other.
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        event = await event_log.find_event(
            conn, command.event_id, command.merchant_id, command.environment
        )
        if event is None:
            return replies.event_not_found(command.event_id)
        deliveries = await event_log.deliveries_of(conn, event.id)
        attempts = await event_log.attempts_of(conn, [d.id for d in deliveries])
    return QueryReply(data=event_detail(event.body, [(d, attempts[d.id]) for d in deliveries]))


async def get_endpoint(pool: asyncpg.Pool, command: WebhooksCommand) -> QueryReply:
    async with pool.acquire() as conn:
        endpoint = await event_log.endpoint_status(conn, command.merchant_id, command.environment)
    if endpoint is None or endpoint.url is None:
        return replies.endpoint_not_found()
    return QueryReply(data=endpoint_view(endpoint, utcnow()))
