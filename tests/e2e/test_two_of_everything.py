"""Two of everything: two gateways, orchestrators, sandbox connectors, ledgers and
dispatchers side by side under load (a few hundred payments, refunds, OTPs); one of each
pair is SIGKILLed mid-run and never comes back. Every payment ends final, is booked once,
every terminal webhook arrives (deduplicated by event id), nothing is dead-lettered, and
every approved push told the merchant `processing` before `completed` (per-payment order
of provider updates, with two orchestrators and prefetch 50 handling them at once)."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fluxpay_testing.infra import Infra, free_port, isolated_infra

from tests.chaos.scenario import Figures, Load, report, verify
from tests.support.receiver import WebhookReceiver
from tests.support.stack import ROOT, ServiceSpec, Stack

pytestmark = pytest.mark.e2e
PAIRS = {
    "gateway": ["fluxpay-gateway"],
    "orchestrator": ["fluxpay-orchestrator"],
    "connector-sandbox": ["fluxpay-connector", "--provider", "sandbox"],
    "ledger": ["fluxpay-ledger"],
    "webhooks": ["fluxpay-webhooks"],
}
SECONDS, RATE = 45, 6.0  # about 270 payments


class TwoGateways(httpx.AsyncBaseTransport):
    """Requests alternate between the gateways, as a load balancer would; one refusing
    connections (killed) is skipped for the other, as a load balancer's health check does.
    A request cut mid-way by the kill fails, and the merchant's client retries it (same
    Idempotency-Key)."""

    def __init__(self, ports: list[int]) -> None:
        self._ports = ports
        self._turn = 0
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._turn += 1
        for offset in range(len(self._ports)):
            port = self._ports[(self._turn + offset) % len(self._ports)]
            request.url = request.url.copy_with(port=port)
            try:
                return await self._inner.handle_async_request(request)
            except httpx.ConnectError:
                if offset == len(self._ports) - 1:
                    raise
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture(scope="module")
def doubled() -> Iterator[tuple[Infra, Stack, list[int]]]:
    with isolated_infra() as infra:
        second_gateway = free_port()
        services = [
            ServiceSpec(f"{name}-{copy}", argv)
            for name, argv in PAIRS.items()
            for copy in ("a", "b")
        ]
        next(s for s in services if s.name == "gateway-b").env["FLUXPAY_GATEWAY_PORT"] = str(
            second_gateway
        )
        stack = Stack(
            infra,
            log_dir=ROOT / "artifacts" / f"two-of-everything-{uuid.uuid4().hex[:6]}",
            services=services,
            extra_env={
                "FLUXPAY_SANDBOX_DELAY_SECONDS": "0.3",
                "FLUXPAY_WEBHOOK_RETRY_SCHEDULE": "0,1,1,2,2,3,3,3",
                "FLUXPAY_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS": "true",
            },
        )
        stack.start()
        try:
            stack.wait_ready()
            yield infra, stack, [stack.port, second_gateway]
        finally:
            stack.stop()


async def _kill_one_of_each(stack: Stack, after: float, gap: float, figures: Figures) -> None:
    await asyncio.sleep(after)
    for name in PAIRS:
        stack.kill(f"{name}-a", signal.SIGKILL)
        figures.faults.append(f"SIGKILL {name}-a (not restarted)")
        await asyncio.sleep(gap)


async def test_two_of_each_service_survive_losing_one_of_each_under_load(doubled) -> None:
    infra, stack, ports = doubled
    figures = Figures()
    receiver = WebhookReceiver().start()
    try:
        merchant = stack.admin("create-merchant", "--name", "Twice", "--webhook-url", receiver.url)
        keys, secrets = merchant["api_keys"], merchant["webhook_secrets"]
        assert isinstance(keys, dict) and isinstance(secrets, dict)
        async with httpx.AsyncClient(
            base_url=f"{stack.base_url}/api/v1",
            headers={"Authorization": f"Bearer {keys['test']}"},
            timeout=15,
            transport=TwoGateways(ports),
        ) as client:
            load = Load(client, figures, seed=12)
            await asyncio.gather(
                load.run(SECONDS, RATE), _kill_one_of_each(stack, SECONDS / 3, 2.0, figures)
            )
            await load.settle(timeout=240)
            await verify(
                infra,
                load,
                receiver,
                list(secrets.values()),
                str(merchant["merchant_id"]),
                figures,
                timeout=240,
            )
            told = {
                (e["data"]["object"]["id"], e["type"])  # type: ignore[index]
                for e, _ in receiver.verified_events(str(secrets["test"]))
            }
        pushes = [
            i
            for i in load.intents
            if i.payment_id and i.operator == "mtn" and i.expected == "completed"
        ]
        not_told = [
            i.payment_id for i in pushes if (i.payment_id, "collect.payment.processing") not in told
        ]
        assert not figures.problems, report(figures)
        assert figures.acknowledged == figures.intents > 200, report(figures)
        assert figures.status_500 == 0, report(figures)
        assert any(i.refund_id for i in load.intents) and any(
            i.operator == "coris" and i.payment_id for i in load.intents
        )
        assert not not_told, f"{len(not_told)} of {len(pushes)} pushes without processing"
        assert stack.dead_services() == [f"{name}-a" for name in PAIRS]
        print(report(figures))
    finally:
        receiver.stop()
