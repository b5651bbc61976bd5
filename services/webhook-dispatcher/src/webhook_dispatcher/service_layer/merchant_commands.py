"""The `webhooks.commands` queue: the gateway's merchant commands, one handler per type.

Answers are `QueryReply(data=JSON-ready body in the API's shape)` or an error the gateway
renders as the ApiError. Every command is scoped by the API key's merchant and environment,
which the gateway puts on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from fluxpay_common.messages import QueryReply, WebhooksCommand
from webhook_dispatcher.service_layer import merchant_actions, merchant_reads

CommandHandler = Callable[[asyncpg.Pool, WebhooksCommand], Awaitable[QueryReply]]

COMMAND_HANDLERS: dict[str, CommandHandler] = {
    "webhooks.list_events": merchant_reads.list_events,
    "webhooks.get_event": merchant_reads.get_event,
    "webhooks.get_endpoint": merchant_reads.get_endpoint,
    "webhooks.replay_event": merchant_actions.replay_event,
    "webhooks.replay_failed": merchant_actions.replay_failed,
    "webhooks.send_test": merchant_actions.send_test,
}


async def answer(pool: asyncpg.Pool, command: WebhooksCommand) -> QueryReply:
    return await COMMAND_HANDLERS[command.type](pool, command)
