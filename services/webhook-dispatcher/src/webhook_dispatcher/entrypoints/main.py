"""`fluxpay-webhooks`: consume domain events, deliver signed webhooks until SIGTERM."""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from typing import Any

from fluxpay_common import runtime
from fluxpay_common.batch_consumer import BatchConsumer
from fluxpay_common.consumer import Delivery, subscribe
from fluxpay_common.messages import (
    QueryReply,
    WebhooksCommand,
    WebhooksInspect,
    domain_event_adapter,
    webhooks_request_adapter,
)
from fluxpay_common.runtime import WorkerContext, serve_worker
from fluxpay_common.topology import WEBHOOK_COMMANDS, WEBHOOK_EVENTS
from webhook_dispatcher import bootstrap
from webhook_dispatcher.config import Settings
from webhook_dispatcher.service_layer import handlers, inspection, merchant_commands

SERVICE = "webhook-dispatcher"
SCHEMA = "webhooks"


async def register(ctx: WorkerContext) -> None:
    """Answer `webhooks.commands` (the gateway); `webhooks.events` is consumed in batches
    once the topology is declared (`started`)."""
    assert isinstance(ctx.settings, Settings)
    box = bootstrap.secret_box(ctx.settings)

    async def on_command(command: WebhooksCommand | WebhooksInspect, _: Delivery) -> QueryReply:
        if isinstance(command, WebhooksInspect):
            return await inspection.inspect(ctx.pool, command)
        return await merchant_commands.answer(ctx.pool, command, box)

    subscribe(
        ctx.consumers,
        WEBHOOK_COMMANDS,
        webhooks_request_adapter,
        on_command,
        delivery_limit=ctx.settings.delivery_limit,
        retry_seconds=ctx.settings.handler_retry_seconds,
    )


async def started(ctx: WorkerContext) -> None:
    assert isinstance(ctx.settings, Settings)
    dispatcher = bootstrap.build_dispatcher(ctx.pool, ctx.settings)
    # New deliveries are inserted leased and attempted by this dispatcher at once.
    config = bootstrap.handler_config(ctx.settings, first_attempts=dispatcher)

    async def on_events(messages: Sequence[Any]) -> None:
        await handlers.handle_batch(ctx.pool, messages, config)

    events = BatchConsumer(
        ctx.settings.rabbitmq_url.get_secret_value(),
        WEBHOOK_EVENTS,
        domain_event_adapter,
        on_events,
        batch_size=ctx.settings.webhook_event_batch_size,
        retry_seconds=ctx.settings.handler_retry_seconds,
        delivery_limit=ctx.settings.delivery_limit,
    )
    ctx.supervisor.start("webhook-dispatcher", dispatcher.run)
    ctx.supervisor.start("webhook-events", events.run)


async def _main() -> None:
    await serve_worker(
        SERVICE,
        Settings(),
        schema=SCHEMA,
        migrations=importlib.resources.files("webhook_dispatcher") / "migrations",
        register=register,
        started=started,
    )


def main() -> None:
    runtime.parse_service_args("fluxpay-webhooks", __doc__)
    runtime.run(_main)
