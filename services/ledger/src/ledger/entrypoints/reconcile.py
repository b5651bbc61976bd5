"""`fluxpay-ledger reconcile`: compare a day of the orchestrator with the books; print a
JSON report. The orchestrator's side is asked through its door (request/reply over
RabbitMQ); the books are read from the ledger's schema. The operator CLI
`fluxpay-admin reconcile` asks the running ledger for the same report (`ReconcileDay`).
Exit status: 0 when the two agree and the books check out, 1 on any difference or problem
(each also summarized on stderr), 2 when the books cannot be read or the orchestrator
does not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import date

import asyncpg
import orjson

from fluxpay_common.db import create_pool
from fluxpay_common.rpc import RpcTimeout, RpcUnavailable
from ledger.adapters.orchestrator import OrchestratorDoor
from ledger.service_layer.reconciliation import DayReport, reconcile_day
from ledger.service_layer.report import report_body

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
    *,
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/",
    timeout: float = 30.0,
) -> int:
    """Print the day's report on stdout; the process exit status."""
    scope = (day, provider, environment, merchant_id)
    try:
        report = asyncio.run(_report(database_url, rabbitmq_url, timeout, *scope))
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError) as exc:
        sys.stderr.write(f"reconcile needs the ledger's schema (start the ledger once): {exc}\n")
        return EXIT_UNREADABLE
    except (RpcTimeout, RpcUnavailable) as exc:
        sys.stderr.write(f"reconcile could not ask the orchestrator for its day: {exc!r}\n")
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
    rabbitmq_url: str,
    timeout: float,
    day: date,
    provider: str | None,
    environment: str | None,
    merchant_id: uuid.UUID | None,
) -> DayReport:
    pool = await create_pool(database_url, SCHEMA, min_size=1, max_size=1, service="reconcile")
    door = OrchestratorDoor(rabbitmq_url, timeout)
    try:
        async with pool.acquire() as conn:
            # The books first: a missing schema is said plainly, before asking anyone.
            await conn.execute("SELECT FROM journal_entry LIMIT 0")
            await door.start()
            return await reconcile_day(conn, door, day, provider, environment, merchant_id)
    finally:
        await door.stop()
        await pool.close()


def render(report: DayReport) -> str:
    # asyncpg's UUIDs are not the stdlib's: `default=str` prints them.
    return orjson.dumps(report_body(report), default=str, option=orjson.OPT_INDENT_2).decode()


def summary(report: DayReport) -> str:
    lines = [
        f"reconcile {report.day}: {len(report.differences)} difference(s),"
        f" {len(report.problems)} problem(s)",
        *(f"  {d.describe()}" for d in report.differences),
        *(f"  problem: {p}" for p in report.problems),
    ]
    return "\n".join(lines) + "\n"
