"""`fluxpay-admin`: operator CLI. Prints one JSON object per command on stdout."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
import structlog

from api_gateway import admin, review_cli
from api_gateway.app import MIGRATIONS, SCHEMA
from api_gateway.config import Settings
from api_gateway.operations import OPERATIONS, add_operation_commands, run_operation
from api_gateway.reconcile_cli import add_reconcile_arguments, run_reconcile
from fluxpay_common.crypto import SecretBox
from fluxpay_common.db import create_pool, migrate
from fluxpay_common.logging import configure_logging
from fluxpay_common.ssrf import UnsafeDestination, check_url


async def _with_pool(settings: Settings, work: Callable[[asyncpg.Pool], Awaitable[Any]]) -> Any:
    pool = await create_pool(
        settings.database_url.get_secret_value(), SCHEMA, min_size=1, max_size=2, service="admin"
    )
    try:
        await migrate(pool, SCHEMA, MIGRATIONS)
        return await work(pool)
    finally:
        await pool.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fluxpay-admin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser(
        "create-merchant",
        help="a merchant with a test and a live API key, and a test and a live webhook"
        " endpoint (same URL) with distinct secrets",
    )
    create.add_argument("--name", required=True)
    create.add_argument("--webhook-url", default=None)
    revoke = commands.add_parser("revoke-key", help="revoke an API key at once")
    revoke.add_argument("--api-key", required=True)
    add_reconcile_arguments(
        commands.add_parser(
            "reconcile",
            help="compare a day of the orchestrator with the ledger; exit 1 on any difference",
        )
    )
    review_cli.add_review_commands(commands)
    add_operation_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = Settings()
    # Logs go to stderr: stdout carries the command's JSON only.
    configure_logging("admin", "WARNING")
    _logs_to_stderr()
    if args.command in OPERATIONS:
        result = run_operation(args, settings.rabbitmq_url.get_secret_value())
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return
    if args.command == "reconcile":
        # The running ledger's report and exit status (it asks the orchestrator for its day).
        rabbitmq_url = settings.rabbitmq_url.get_secret_value()
        sys.exit(run_reconcile(rabbitmq_url, args, settings.reconcile_timeout))
    if args.command in review_cli.COMMAND_NAMES:
        sys.exit(review_cli.print_outcome(*asyncio.run(_review(settings, args))))
    box = SecretBox(settings.secrets_key.get_secret_value())
    if args.command == "create-merchant" and args.webhook_url is not None:
        _refuse_unsafe_url(args.webhook_url, settings.webhook_allow_private_destinations)

    async def run(pool: asyncpg.Pool) -> dict[str, Any]:
        if args.command == "create-merchant":
            created = await admin.create_merchant(pool, box, args.name, args.webhook_url)
            return created.as_json()
        revoked = await admin.revoke_key(pool, args.api_key)
        return {"revoked": revoked}

    result = asyncio.run(_with_pool(settings, run))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


async def _review(settings: Settings, args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """The connectors answer from their own review queue; a resolution is audited here."""
    rabbitmq_url = settings.rabbitmq_url.get_secret_value()
    timeout = settings.rpc_timeout
    if args.command == "provider-reviews":
        providers = review_cli.providers_to_ask(args.provider)
        return await review_cli.list_reviews(rabbitmq_url, providers, args.limit, timeout)

    async def resolve(pool: asyncpg.Pool) -> tuple[int, dict[str, Any]]:
        audit = review_cli.audit_with(pool)
        return await review_cli.resolve_review(rabbitmq_url, args, timeout, audit)

    outcome: tuple[int, dict[str, Any]] = await _with_pool(settings, resolve)
    return outcome


def _logs_to_stderr() -> None:
    """Service logging writes to stdout; a CLI's stdout is its JSON answer alone."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)


def _refuse_unsafe_url(url: str, allow_private: bool) -> None:
    """The URL serves test and live: it must pass both environments' policy (exit 2)."""
    for environment in admin.ENVIRONMENTS:
        try:
            check_url(url, environment, allow_private=allow_private)
        except UnsafeDestination as refusal:
            error = {"code": refusal.code, "message": refusal.reason, "param": "webhook_url"}
            sys.stderr.write(orjson.dumps({"error": error}).decode() + "\n")
            sys.exit(2)


if __name__ == "__main__":
    main()
