"""`fluxpay-admin reconcile`: the ledger's report of a day, asked of the running ledger.

The gateway imports no other service: it sends `ReconcileDay` (request/reply on the ledger's
queue) and prints the report the ledger answers. Exit status as `fluxpay-ledger reconcile`:
0 clean, 1 on any difference or problem (summarized on stderr), 2 when no answer came.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import date
from typing import Any

import orjson

from fluxpay_common.messages import QueryReply, ReconcileDay
from fluxpay_common.rpc import RpcClient, RpcTimeout, RpcUnavailable
from fluxpay_common.topology import COMMANDS, LEDGER_QUERIES_KEY

EXIT_CLEAN, EXIT_DIFFERENCES, EXIT_UNANSWERED = 0, 1, 2


def add_reconcile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--day", type=date.fromisoformat, required=True, help="UTC, YYYY-MM-DD")
    parser.add_argument("--provider", default=None, help="one provider (default: all)")
    parser.add_argument("--environment", choices=["test", "live"], default=None)
    parser.add_argument("--merchant", type=uuid.UUID, default=None, help="one merchant's id")


def run_reconcile(rabbitmq_url: str, args: argparse.Namespace, timeout: float) -> int:
    request = ReconcileDay(
        day=args.day,
        provider=args.provider,
        environment=args.environment,
        merchant_id=args.merchant,
    )
    try:
        reply = asyncio.run(_ask(rabbitmq_url, request, timeout))
    except (RpcTimeout, RpcUnavailable) as exc:
        sys.stderr.write(f"reconcile: the ledger did not answer: {exc!r}\n")
        return EXIT_UNANSWERED
    if reply.error is not None:
        sys.stderr.write(f"reconcile: the ledger could not reconcile: {reply.error.message}\n")
        return EXIT_UNANSWERED
    report: dict[str, Any] = reply.data
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    if not report["differences"] and not report["problems"]:
        return EXIT_CLEAN
    sys.stderr.write(summary(report))
    return EXIT_DIFFERENCES


async def _ask(rabbitmq_url: str, request: ReconcileDay, timeout: float) -> QueryReply:
    client = RpcClient(rabbitmq_url, COMMANDS.name, LEDGER_QUERIES_KEY)
    await client.start()
    try:
        reply: QueryReply = await client.call(request, QueryReply, timeout)
        return reply
    finally:
        await client.stop()


def summary(report: dict[str, Any]) -> str:
    lines = [
        f"reconcile {report['day']}: {len(report['differences'])} difference(s),"
        f" {len(report['problems'])} problem(s)",
        *(f"  {d['description']}" for d in report["differences"]),
        *(f"  problem: {p}" for p in report["problems"]),
    ]
    return "\n".join(lines) + "\n"
