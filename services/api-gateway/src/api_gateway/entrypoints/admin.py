"""`fluxpay-admin`: operator CLI. Prints one JSON object per command on stdout."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson

from api_gateway import admin
from api_gateway.app import MIGRATIONS, SCHEMA
from api_gateway.settings import Settings
from fluxpay_common.crypto import SecretBox
from fluxpay_common.db import create_pool, migrate
from fluxpay_common.logging import configure_logging
from ledger.entrypoints.reconcile import add_reconcile_arguments, run_reconcile
from provider_connectors.entrypoints.review import COMMANDS as REVIEW_COMMANDS
from provider_connectors.entrypoints.review import add_review_commands, run_review_command


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
        "create-merchant", help="a merchant with a test and a live API key and a webhook secret"
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
    add_review_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = Settings()
    # Logs go to stderr: stdout carries the command's JSON only.
    configure_logging("admin", "WARNING")
    if args.command == "reconcile":
        # The ledger's own report and exit status; it reads the ledger and orchestrator schemas.
        dsn = settings.database_url.get_secret_value()
        sys.exit(run_reconcile(dsn, args.day, args.provider, args.environment, args.merchant))
    if args.command in REVIEW_COMMANDS:
        result = asyncio.run(_review(settings, args))
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return
    box = SecretBox(settings.secrets_key.get_secret_value())

    async def run(pool: asyncpg.Pool) -> dict[str, Any]:
        if args.command == "create-merchant":
            created = await admin.create_merchant(pool, box, args.name, args.webhook_url)
            return created.as_json()
        revoked = await admin.revoke_key(pool, args.api_key)
        return {"revoked": revoked}

    result = asyncio.run(_with_pool(settings, run))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


async def _review(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """The connectors' review queue; a resolution is written to the audit log as well."""
    result = await run_review_command(settings.database_url.get_secret_value(), args)
    if args.command == "resolve-review":

        async def audit(pool: asyncpg.Pool) -> None:
            details = {**result, "outcome": args.outcome, "reason": args.reason}
            await pool.execute(
                "INSERT INTO audit_log (actor, action, details) VALUES ($1, $2, $3)",
                f"fluxpay-admin:{args.actor}",
                "provider_review.resolve",
                details,
            )

        await _with_pool(settings, audit)
    return result


if __name__ == "__main__":
    main()
