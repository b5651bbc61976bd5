"""The fault scenario, shortened: every service SIGKILLed and restarted under load, the
merchant's receiver failing for a while; nothing lost, nothing doubled, books balanced.
(`make chaos` runs the long version, with RabbitMQ and PostgreSQL restarts.)"""

from __future__ import annotations

import pytest
from fluxpay_testing.infra import isolated_infra

from tests.chaos.scenario import chaos_stack, report, run_chaos

pytestmark = pytest.mark.e2e


async def test_no_payment_lost_or_doubled_when_services_are_killed() -> None:
    # Its own database, vhost and stack: the faults must not disturb the other e2e tests.
    import asyncio

    def scenario() -> str:
        with isolated_infra() as infra:
            stack = chaos_stack(infra, "chaos-short", "0.3", "0,1,1,2,2,3,3,3")
            stack.start()
            try:
                stack.wait_ready()
                figures = asyncio.run(
                    run_chaos(infra, stack, seconds=30, rate=5, gap=4, full=False)
                )
            finally:
                stack.stop()
            assert figures.acknowledged == figures.intents > 100
            assert figures.status_500 == 0
            assert len(figures.faults) == 6
            assert not figures.problems, report(figures)
            return report(figures)

    print(await asyncio.to_thread(scenario))
