"""The review queue's operator commands, mounted in `fluxpay-admin`:

- `provider-reviews [--provider NAME]`: the open reviews and their count;
- `resolve-review --payment-id ID --outcome paid|failed --reason TEXT [--psp-reference R]`.
"""

from __future__ import annotations

import argparse
import uuid
from importlib import resources
from typing import Any

from fluxpay_common.db import create_pool, migrate
from provider_connectors.entrypoints.main import SCHEMA
from provider_connectors.service_layer import review

MIGRATIONS = resources.files("provider_connectors") / "migrations"

COMMANDS = ("provider-reviews", "resolve-review")


def add_review_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    listing = commands.add_parser(
        "provider-reviews", help="live payments no PSP answer settled, waiting for an operator"
    )
    listing.add_argument("--provider", default=None)
    listing.add_argument("--limit", type=int, default=100)
    resolve = commands.add_parser(
        "resolve-review", help="settle a reviewed payment as paid or failed (audited)"
    )
    resolve.add_argument("--payment-id", type=uuid.UUID, required=True)
    resolve.add_argument("--outcome", choices=["paid", "failed"], required=True)
    resolve.add_argument("--reason", required=True, help="why (e.g. the PSP's statement line)")
    resolve.add_argument("--psp-reference", default=None)
    resolve.add_argument("--actor", default="operator", help="who decides (kept with the review)")


async def run_review_command(database_url: str, args: argparse.Namespace) -> dict[str, Any]:
    pool = await create_pool(database_url, SCHEMA, min_size=1, max_size=2, service="admin")
    try:
        await migrate(pool, SCHEMA, MIGRATIONS)
        if args.command == "provider-reviews":
            return await review.list_open(pool, args.provider, args.limit)
        done = await review.resolve(
            pool, args.payment_id, args.outcome, args.reason, args.actor, args.psp_reference
        )
        return {
            "payment_id": str(done.payment_id),
            "provider": done.provider,
            "status": done.status,
            "published": done.published,
        }
    finally:
        await pool.close()
