"""`fluxpay-ledger`: the worker booking domain events (default), or a reconciliation report.

fluxpay-ledger                                   run the worker until SIGTERM
fluxpay-ledger reconcile --day 2026-06-01 [--provider sandbox] [--environment live]
                         [--merchant <uuid>]   the orchestrator's day (asked through its
                                               door) against the books
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import resources

from fluxpay_common import runtime
from fluxpay_common.batch_consumer import BatchConsumer, BatchHandler
from fluxpay_common.consumer import DeadLetter, Delivery, subscribe
from fluxpay_common.logging import configure_logging, get_logger
from fluxpay_common.messages import (
    DomainEvent,
    LedgerRequest,
    QueryReply,
    domain_event_adapter,
    ledger_request_adapter,
)
from fluxpay_common.topology import LEDGER_EVENTS, LEDGER_QUERIES
from ledger import bootstrap
from ledger.config import Settings
from ledger.domain.books import UnbalancedEntry, UnbookableEvent
from ledger.entrypoints.reconcile import add_reconcile_arguments, run_reconcile
from ledger.service_layer.handlers import handle_events
from ledger.service_layer.requests import Dependencies, handle_request

log = get_logger(__name__)
SERVICE = "ledger"
SCHEMA = "ledger"


def migrations() -> object:
    return resources.files("ledger") / "migrations"


_WIRED: dict[str, Dependencies] = {}


async def register(ctx: runtime.WorkerContext) -> None:
    """Answer `ledger.queries` (the gateway's reads, the orchestrator's refund holds, the
    operator's reconciliation); `ledger.events` is booked in batches once the topology is
    declared (`started`)."""
    settings = ctx.settings
    assert isinstance(settings, Settings)
    deps = _WIRED["deps"] = bootstrap.dependencies(ctx.pool, settings)

    async def on_request(request: LedgerRequest, _: Delivery) -> QueryReply | None:
        return await handle_request(request, deps)

    subscribe(
        ctx.consumers,
        LEDGER_QUERIES,
        ledger_request_adapter,
        on_request,
        delivery_limit=settings.delivery_limit,
        retry_seconds=settings.handler_retry_seconds,
    )


async def started(ctx: runtime.WorkerContext) -> None:
    """Book `ledger.events` (settled payments and refunds): a batch per transaction."""
    settings = ctx.settings
    assert isinstance(settings, Settings)
    events = BatchConsumer(
        settings.rabbitmq_url.get_secret_value(),
        LEDGER_EVENTS,
        domain_event_adapter,
        book_events(_WIRED["deps"]),
        batch_size=settings.ledger_event_batch_size,
        retry_seconds=settings.handler_retry_seconds,
        delivery_limit=settings.delivery_limit,
    )
    ctx.supervisor.start("ledger-events", events.run)


def book_events(deps: Dependencies) -> BatchHandler[DomainEvent]:
    """The batch handler of `ledger.events`: an unbookable event is a `DeadLetter`."""

    async def on_events(events: Sequence[DomainEvent]) -> None:
        try:
            await handle_events(events, deps.open_books, deps.fees)
        except (UnbookableEvent, UnbalancedEntry) as exc:
            # Redelivery cannot help: dead-letter now; replay the message once it is fixed.
            # A batch of several is then booked event by event: the others go through.
            if len(events) == 1:
                log.error(
                    "event_dead_lettered_unbookable", event_type=events[0].type, reason=str(exc)
                )
            raise DeadLetter(str(exc)) from exc

    return on_events


async def _stopped(_: runtime.WorkerContext) -> None:
    if "deps" in _WIRED:
        await _WIRED["deps"].orchestrator.stop()


async def serve(settings: Settings) -> None:
    await runtime.serve_worker(
        SERVICE,
        settings,
        schema=SCHEMA,
        migrations=migrations(),
        register=register,
        started=started,
        stopped=_stopped,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fluxpay-ledger", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    add_reconcile_arguments(
        commands.add_parser(
            "reconcile", help="compare a day of the orchestrator with the books (JSON report)"
        )
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    settings = Settings()
    if args.command == "reconcile":
        # stdout carries the report's JSON only.
        configure_logging("reconcile", "WARNING")
        dsn = settings.database_url.get_secret_value()
        scope = (args.day, args.provider, args.environment, args.merchant)
        rabbitmq_url = settings.rabbitmq_url.get_secret_value()
        timeout = settings.reconcile_rpc_timeout
        sys.exit(run_reconcile(dsn, *scope, rabbitmq_url=rabbitmq_url, timeout=timeout))
    runtime.run(lambda: serve(settings))


if __name__ == "__main__":
    main()
