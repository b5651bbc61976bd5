"""`fluxpay-orchestrator`: owns payments; consumes commands and provider updates (in
batches)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

from fluxpay_common import runtime
from fluxpay_common.batch_consumer import BatchConsumer, Late
from fluxpay_common.consumer import Delivery, subscribe
from fluxpay_common.messages import (
    Message,
    QueryReply,
    Reply,
    orchestrator_command_adapter,
    provider_update_adapter,
)
from fluxpay_common.topology import ORCHESTRATOR_COMMANDS, ORCHESTRATOR_PROVIDER_UPDATES
from payment_orchestrator import bootstrap
from payment_orchestrator.config import Settings
from payment_orchestrator.service_layer import handlers

SERVICE = "orchestrator"


async def _main() -> None:
    settings = Settings()
    clients = bootstrap.rpc_clients(settings)
    wired: dict[str, handlers.Dependencies] = {}

    async def register(ctx: runtime.WorkerContext) -> None:
        deps = bootstrap.dependencies(ctx.pool, settings, clients, ctx.relay)
        wired["deps"] = deps

        async def on_command(command: Message, _: Delivery) -> Reply | QueryReply:
            return await handlers.handle_command(command, deps)

        limit, retry = settings.delivery_limit, settings.handler_retry_seconds
        subscribe(
            ctx.consumers,
            ORCHESTRATOR_COMMANDS,
            orchestrator_command_adapter,
            on_command,
            delivery_limit=limit,
            retry_seconds=retry,
        )

    async def started(ctx: runtime.WorkerContext) -> None:
        """Provider updates are consumed in batches once the topology is declared."""
        deps = wired["deps"]

        async def on_updates(updates: Sequence[Any]) -> Late:
            return await handlers.handle_update_batch(updates, deps)

        updates = BatchConsumer(
            settings.rabbitmq_url.get_secret_value(),
            ORCHESTRATOR_PROVIDER_UPDATES,
            provider_update_adapter,
            on_updates,
            batch_size=settings.provider_update_batch_size,
            retry_seconds=settings.handler_retry_seconds,
            delivery_limit=settings.delivery_limit,
        )
        ctx.supervisor.start("provider-updates", updates.run)
        ctx.supervisor.start(
            "expiry-sweep",
            lambda: runtime.every(settings.expiry_sweep_seconds, lambda: handlers.expire_due(deps)),
        )

    await runtime.serve_worker(
        SERVICE,
        settings,
        schema="orchestrator",
        migrations=resources.files("payment_orchestrator") / "migrations",
        register=register,
        started=started,
        stopped=lambda _: clients.close(),
    )


def main() -> None:
    runtime.parse_service_args("fluxpay-orchestrator", __doc__)
    runtime.run(_main)


if __name__ == "__main__":
    main()
