"""`reconcile`: compare a day of the orchestrator with the books; print a JSON report.

Shared by `fluxpay-ledger reconcile` and the operator CLI `fluxpay-admin reconcile`, which
delegates here. Exit status: 0 when the two agree and the books check out, 1 on any
difference or problem (each also summarized on stderr), 2 when the schemas cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import uuid
from datetime import date
from typing import Any

import asyncpg
import orjson

from fluxpay_common.db import create_pool
from ledger.domain.reconciliation import Difference, Movement
from ledger.service_layer.reconciliation import DayReport, reconcile_day

SCHEMA = "ledger"
EXIT_CLEAN, EXIT_DIFFERENCES, EXIT_UNREADABLE = 0, 1, 2


def add_reconcile_arguments(parser: argparse.ArgumentParser) -> None:
    """The `reconcile` options, shared with `fluxpay-admin reconcile`."""
    parser.add_argument("--day", type=date.fromisoformat, required=True, help="UTC, YYYY-MM-DD")
    parser.add_argument("--provider", default=None, help="one provider (default: all)")
    parser.add_argument("--environment", choices=["test", "live"], default=None)
    parser.add_argument("--merchant", type=uuid.UUID, default=None, help="one merchant's id")


def run_reconcile(
    database_url: str,
    day: date,
    provider: str | None = None,
    environment: str | None = None,
    merchant_id: uuid.UUID | None = None,
) -> int:
    """Print the day's report on stdout; the process exit status."""
    try:
        report = asyncio.run(_report(database_url, day, provider, environment, merchant_id))
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError) as exc:
        sys.stderr.write(f"reconcile needs the ledger and orchestrator schemas: {exc}\n")
        return EXIT_UNREADABLE
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # Not 1: a script reading the status must not take an outage for a difference.
        sys.stderr.write(f"reconcile could not read the database: {exc!r}\n")
        return EXIT_UNREADABLE
    sys.stdout.write(render(report) + "\n")
    if report.clean:
        return EXIT_CLEAN
    sys.stderr.write(summary(report))
    return EXIT_DIFFERENCES


async def _report(
    database_url: str,
    day: date,
    provider: str | None,
    environment: str | None,
    merchant_id: uuid.UUID | None,
) -> DayReport:
    pool = await create_pool(database_url, SCHEMA, min_size=1, max_size=1, service="reconcile")
    try:
        async with pool.acquire() as conn:
            return await reconcile_day(conn, day, provider, environment, merchant_id)
    finally:
        await pool.close()


def render(report: DayReport) -> str:
    body: dict[str, Any] = {
        "day": report.day,
        "provider": report.provider,
        "environment": report.environment,
        "merchant_id": report.merchant_id,
        "payments_checked": report.payments_checked,
        "refunds_checked": report.refunds_checked,
        "differences": [difference_body(d) for d in report.differences],
        "problems": report.problems,
        "totals": [dataclasses.asdict(t) for t in report.totals],
    }
    # asyncpg's UUIDs are not the stdlib's: `default=str` prints them.
    return orjson.dumps(body, default=str, option=orjson.OPT_INDENT_2).decode()


def difference_body(difference: Difference) -> dict[str, Any]:
    movement = difference.key[0]
    side = difference.expected or difference.booked
    assert side is not None
    return {
        "kind": difference.kind,
        "movement": movement.value,
        "payment_id": side.payment_id,
        "refund_id": side.refund_id,
        "expected": _movement_body(difference.expected),
        "booked": _movement_body(difference.booked),
        "description": difference.describe(),
    }


def _movement_body(movement: Movement | None) -> dict[str, Any] | None:
    if movement is None:
        return None
    body = dataclasses.asdict(movement)
    for key in ("kind", "payment_id", "refund_id"):
        body.pop(key)
    return body


def summary(report: DayReport) -> str:
    lines = [
        f"reconcile {report.day}: {len(report.differences)} difference(s),"
        f" {len(report.problems)} problem(s)",
        *(f"  {d.describe()}" for d in report.differences),
        *(f"  problem: {p}" for p in report.problems),
    ]
    return "\n".join(lines) + "\n"
