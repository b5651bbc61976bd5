"""The benchmark harness, shortened: it drives the stack as merchants would and its figures
account for every payment (no speed is asserted here: `make bench` measures it)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from fluxpay_testing.infra import isolated_infra

from tests.bench.run import bench, parse_args

pytestmark = pytest.mark.e2e


async def test_bench_accounts_for_every_payment_and_where_its_cpu_went() -> None:
    args = parse_args(
        ["--duration", "4", "--rate", "5", "--api-seconds", "2", "--concurrency", "4",
         "--infra-seconds", "1", "--profile", "orchestrator"]
    )  # fmt: skip

    def run() -> dict[str, Any]:
        with isolated_infra() as infra:
            return asyncio.run(bench(args, infra))

    figures = await asyncio.to_thread(run)
    assert figures["payments_offered"] >= 15  # 5/s for 4 s
    assert figures["payments_delivered"] == figures["payments_offered"], figures
    assert figures["accepted payments not completed after drain"] == "0"
    assert figures["errors (API phase)"] == figures["errors (E2E phase)"] == "0"
    # The bare infrastructure's cost per operation, for the README's arithmetic.
    assert float(figures["infra: machine CPU per transaction (ms; 4 round trips)"]) > 0
    assert float(figures["infra: machine CPU per message (ms)"]) > 0
    cpu = figures["cpu_ms_per_payment"]
    for process in ("gateway", "orchestrator", "ledger", "webhooks", "connector-sandbox"):
        assert cpu[process] > 0, cpu
    assert cpu["platform total (all but the load generator)"] >= sum(
        cpu[p] for p in ("gateway", "orchestrator", "ledger", "webhooks")
    )
    sql = figures["sql_statements_per_payment"]
    if sql:  # the server loads pg_stat_statements: round trips counted for this run only
        assert sql["total"] > 0, sql
        assert sum(n for text, n in sql.items() if text != "total") == pytest.approx(sql["total"])
    if os.geteuid() == 0:  # py-spy reads another process's memory: root, or ptrace rights
        packages = {area for area, _, _ in figures["profiles"]["orchestrator"]}
        assert "payment_orchestrator" in packages, packages


async def test_overload_mode_accounts_for_every_answer_and_every_accepted_payment() -> None:
    args = parse_args(
        ["--rate", "4", "--overload", "--overload-seconds", "3", "--infra-seconds", "1",
         "--env", "FLUXPAY_CREATE_MAX_IN_FLIGHT=2"]
    )  # fmt: skip

    def run() -> dict[str, Any]:
        with isolated_infra() as infra:
            return asyncio.run(bench(args, infra))

    figures = await asyncio.to_thread(run)
    # 12/s for 3 s: every create answered (accepted or refused), none timed out.
    answered = figures["payments_offered"]
    assert answered >= 30, figures
    assert figures["timeouts (no answer within the client timeout)"] == "0"
    assert figures["payments_delivered"] == int(figures["end-to-end accepted (201)"]) > 0
    assert figures["accepted payments not completed after drain"] == "0"
    # Every refusal a 503 that said when to retry.
    assert set(figures["refusals"]) <= {"503"}, figures["refusals"]
    assert figures["refused_with_retry_after"] == sum(figures["refusals"].values())
