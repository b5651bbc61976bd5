"""`webhooks.stream_events`: a merchant's recent test events, each signed now with the
merchant's webhook secrets, for the gateway's event stream (`GET /api/v1/events/stream`,
which the `fluxpay listen` CLI reads and forwards to a local server).

The secrets never leave this service: the gateway receives bodies and signatures only.
"""

from __future__ import annotations

import time

import asyncpg

from fluxpay_common.crypto import SecretBox
from fluxpay_common.ids import utcnow
from fluxpay_common.messages import QueryReply, WebhooksCommand
from fluxpay_common.signing import signature_header
from webhook_dispatcher.adapters import event_stream, repository
from webhook_dispatcher.domain.delivery import signing_secrets
from webhook_dispatcher.domain.event_stream import (
    MAX_STREAM_PAGE,
    STREAM_ENVIRONMENT,
    stream_item,
    stream_page,
)
from webhook_dispatcher.service_layer import replies


async def signed_events(pool: asyncpg.Pool, box: SecretBox, command: WebhooksCommand) -> QueryReply:
    if command.environment != STREAM_ENVIRONMENT:
        return replies.test_key_required()
    if command.since is None:
        return replies.parameter_missing("since")
    limit = max(1, min(command.limit, MAX_STREAM_PAGE))
    endpoint = await repository.load_endpoint(pool, command.merchant_id, command.environment)
    sealed = signing_secrets(endpoint, utcnow()) if endpoint is not None else ()
    if not sealed:
        return replies.endpoint_not_found()
    secrets = [box.open(s) for s in sealed]
    events = await event_stream.events_since(
        pool, command.merchant_id, command.environment, command.since, limit + 1
    )
    timestamp = int(time.time())
    items = [stream_item(e, signature_header(secrets, timestamp, e.body)) for e in events[:limit]]
    return QueryReply(data=stream_page(items, len(events) > limit))
