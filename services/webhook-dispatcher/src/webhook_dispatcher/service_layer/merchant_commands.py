"""The `webhooks.commands` queue: the gateway's merchant commands, one handler per type.

Answers are `QueryReply(data=JSON-ready body in the API's shape)` or an error the gateway
renders as the ApiError. Every command is scoped by the API key's merchant and environment,
which the gateway puts on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from fluxpay_common.crypto import SecretBox
from fluxpay_common.messages import QueryReply, WebhooksCommand
from webhook_dispatcher.service_layer import event_stream, merchant_actions, merchant_reads

CommandHandler = Callable[[asyncpg.Pool, WebhooksCommand], Awaitable[QueryReply]]
SigningHandler = Callable[[asyncpg.Pool, SecretBox, WebhooksCommand], Awaitable[QueryReply]]

COMMAND_HANDLERS: dict[str, CommandHandler] = {
    "webhooks.list_events": merchant_reads.list_events,
    "webhooks.get_event": merchant_reads.get_event,
    "webhooks.get_endpoint": merchant_reads.get_endpoint,
    "webhooks.replay_event": merchant_actions.replay_event,
    "webhooks.replay_failed": merchant_actions.replay_failed,
    "webhooks.send_test": merchant_actions.send_test,
}
# Commands that sign with the merchant's secrets, so they need the key that opens them.
SIGNING_HANDLERS: dict[str, SigningHandler] = {
    "webhooks.stream_events": event_stream.signed_events,
}


async def answer(
    pool: asyncpg.Pool, command: WebhooksCommand, box: SecretBox | None = None
) -> QueryReply:
    if command.type in SIGNING_HANDLERS:
        assert box is not None, f"{command.type} needs the secrets key"
        return await SIGNING_HANDLERS[command.type](pool, box, command)
    return await COMMAND_HANDLERS[command.type](pool, command)
