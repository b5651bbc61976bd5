"""`fluxpay-ledger reconcile`: print a day's books for a provider as JSON; exit 1 on problems."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from datetime import date
from typing import Any

import orjson

from fluxpay_common.db import create_pool
from ledger.queries import Reconciliation, reconcile
from ledger.settings import Settings


def run_reconcile(
    settings: Settings, day: date, provider: str | None, environment: str | None
) -> int:
    report = asyncio.run(_report(settings, day, provider, environment))
    sys.stdout.write(render(report) + "\n")
    return 1 if report.problems else 0


async def _report(
    settings: Settings, day: date, provider: str | None, environment: str | None
) -> Reconciliation:
    pool = await create_pool(
        settings.database_url.get_secret_value(), "ledger", min_size=1, max_size=2
    )
    try:
        async with pool.acquire() as conn:
            return await reconcile(conn, day, provider, environment)
    finally:
        await pool.close()


def render(report: Reconciliation) -> str:
    body: dict[str, Any] = dataclasses.asdict(report)
    # asyncpg's UUIDs are not the stdlib's: `default=str` prints them.
    body["entries"] = len(report.movements)
    return orjson.dumps(body, default=str, option=orjson.OPT_INDENT_2).decode()
