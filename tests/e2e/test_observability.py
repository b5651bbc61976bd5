"""Metrics and traces of one payment through the whole stack, as an operator sees them:
every process's `/metrics` moves, and the payment's spans (gateway, orchestrator, connector,
ledger, dispatcher) reach an OTLP collector in one trace. And a payment's provider updates
handled out of order still reach the merchant in order."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aio_pika
import httpx
import pytest
from fluxpay_testing.infra import Infra, free_port, isolated_infra, wait_for
from prometheus_client.parser import text_string_to_metric_families

from fluxpay_common.messages import ProviderPaymentUpdate, provider_update_id
from fluxpay_common.topology import PROVIDER, provider_update_key
from tests.conftest import SANDBOX_DELAY
from tests.e2e.conftest import Merchant, idempotency, payment_body
from tests.support.otlp import OtlpReceiver
from tests.support.receiver import WebhookReceiver
from tests.support.stack import ROOT, Stack, default_services

pytestmark = pytest.mark.e2e
WORKERS = ("orchestrator", "ledger", "webhooks", "connector-sandbox")


@pytest.fixture(scope="module")
def own_infra() -> Iterator[Infra]:
    with isolated_infra() as infra:
        yield infra


@pytest.fixture(scope="module")
def collector() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def health_ports() -> dict[str, int]:
    return {name: free_port() for name in WORKERS}


@pytest.fixture(scope="module")
def observed(
    own_infra: Infra, collector: OtlpReceiver, health_ports: dict[str, int]
) -> Iterator[Stack]:
    services = default_services()
    for spec in services:
        if spec.name in health_ports:
            spec.env["FLUXPAY_HEALTH_PORT"] = str(health_ports[spec.name])
    run = os.environ.get("FLUXPAY_TEST_RUN", uuid.uuid4().hex[:8])
    stack = Stack(
        own_infra,
        log_dir=ROOT / "artifacts" / f"e2e-observability-{run}",
        services=services,
        extra_env={
            "FLUXPAY_SANDBOX_DELAY_SECONDS": SANDBOX_DELAY,
            "FLUXPAY_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS": "true",
            # 300 s, the API's shortest expiry, lasts 3 s here.
            "FLUXPAY_EXPIRY_TIME_SCALE": "0.01",
            "FLUXPAY_OTEL_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            # Spans leave each process within a fifth of a second.
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        },
    )
    stack.start()
    try:
        stack.wait_ready()
        yield stack
    finally:
        codes = stack.stop()
        bad = {name: code for name, code in codes.items() if code not in (0, -15)}
        assert not bad, f"services did not stop cleanly on SIGTERM: {bad}"


@pytest.fixture
async def merchant(observed: Stack, receiver: WebhookReceiver) -> AsyncIterator[Merchant]:
    created = observed.admin(
        "create-merchant", "--name", "Metrics shop", "--webhook-url", receiver.url
    )
    keys, secrets = created["api_keys"], created["webhook_secrets"]
    assert isinstance(keys, dict) and isinstance(secrets, dict)
    async with httpx.AsyncClient(
        base_url=f"{observed.base_url}/api/v1",
        headers={"Authorization": f"Bearer {keys['test']}"},
        timeout=15,
    ) as client:
        yield Merchant(
            str(created["merchant_id"]),
            str(keys["test"]),
            str(keys["live"]),
            str(secrets["test"]),
            client,
            {env: str(secret) for env, secret in secrets.items()},
        )


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples named `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def _paid_payment(merchant: Merchant, receiver: WebhookReceiver) -> dict[str, object]:
    body, key = payment_body("+22997000001"), idempotency()
    response = await merchant.client.post("/collect/payments", json=body, headers=key)
    assert response.status_code == 201, response.text
    payment = response.json()
    again = await merchant.client.post("/collect/payments", json=body, headers=key)
    assert again.headers.get("Idempotent-Replayed") == "true"

    async def delivered() -> bool:
        return any(
            e["type"] == "collect.payment.completed" and e["data"]["object"]["id"] == payment["id"]
            for e, _ in receiver.verified_events(merchant.webhook_secret)
        )

    await wait_for(delivered, timeout=60, what="the completed webhook")
    return payment


async def test_every_process_counts_a_payment_on_metrics(
    observed: Stack, merchant: Merchant, receiver: WebhookReceiver, health_ports: dict[str, int]
) -> None:
    before = _scrape(f"{observed.base_url}/metrics")
    await _paid_payment(merchant, receiver)

    gateway = _scrape(f"{observed.base_url}/metrics")
    route = "/api/v1/collect/payments"
    created = {"method": "POST", "route": route, "status": "201"}
    assert _value(gateway, "fluxpay_http_requests_total", **created) >= 1 + _value(
        before, "fluxpay_http_requests_total", **created
    )
    assert _value(gateway, "fluxpay_idempotency_replays_total", route=route) >= 1
    # Route templates, never raw paths: no series names a payment.
    routes = {
        dict(ls).get("route", "") for (n, ls) in gateway if n == "fluxpay_http_requests_total"
    }
    assert all("pay_" not in r and "-" not in r.rsplit("/", 1)[-1] for r in routes), routes

    def worker(name: str) -> Samples:
        return _scrape(f"http://127.0.0.1:{health_ports[name]}/metrics")

    async def counted() -> bool:
        orchestrator, connector = worker("orchestrator"), worker("connector-sandbox")
        ledger, webhooks = worker("ledger"), worker("webhooks")
        return (
            _value(orchestrator, "fluxpay_payments_created_total", provider="sandbox") >= 1
            and _value(
                orchestrator,
                "fluxpay_payments_finished_total",
                status="completed",
                environment="test",
            )
            >= 1
            and _value(orchestrator, "fluxpay_handler_seconds_count") >= 1
            and _value(
                connector,
                "fluxpay_psp_call_seconds_count",
                provider="sandbox",
                flow="initiate",
                outcome="ok",
            )
            >= 1
            and _value(ledger, "fluxpay_handler_seconds_count") >= 1
            and _value(webhooks, "fluxpay_webhook_attempts_total", outcome="delivered") >= 1
            and _value(webhooks, "fluxpay_webhook_delivery_lag_seconds_count") >= 1
            and ("fluxpay_outbox_oldest_age_seconds", frozenset({("service", "orchestrator")}))
            in orchestrator
        )

    await wait_for(counted, timeout=30, what="every process's counters to move")
    assert _value(worker("orchestrator"), "fluxpay_messages_dead_lettered_total") == 0
    # The operator's view of the same: queue depths, and outbox rows through /metrics.
    metrics_url = f"http://127.0.0.1:{health_ports['orchestrator']}/metrics"
    backlog = observed.admin("backlog", "--metrics", metrics_url)
    outbox = backlog["outbox"]
    assert isinstance(outbox, list)
    assert [row["service"] for row in outbox] == ["orchestrator"]
    queues = backlog["queues"]
    assert isinstance(queues, dict)
    assert queues["orchestrator.commands"]["queue"]["consumers"] == 1
    assert queues["orchestrator.commands"]["dlq"]["messages"] == 0


async def test_one_payment_is_one_trace_across_every_service(
    observed: Stack, merchant: Merchant, receiver: WebhookReceiver, collector: OtlpReceiver
) -> None:
    payment = await _paid_payment(merchant, receiver)

    async def create_span_trace() -> str | None:
        # The merchant's POST opened the trace; the orchestrator's consumer span names the payment.
        for span in collector.snapshot():
            if span.attributes.get("payment_id") == payment["id"]:
                return span.trace_id
        return None

    trace_id = await wait_for(create_span_trace, timeout=30, what="a span of the payment")
    assert trace_id is not None
    wanted = {"gateway", "orchestrator", "connector-sandbox", "ledger", "webhook-dispatcher"}

    def services() -> set[str]:
        return {s.service.removeprefix("fluxpay-") for s in collector.trace(trace_id)}

    async def all_there() -> bool:
        return wanted <= services()

    await wait_for(all_there, timeout=30, what=f"spans of {wanted}")
    spans = collector.trace(trace_id)
    roots = [s for s in spans if not s.parent_id]
    assert [(r.service, r.name) for r in roots] == [
        ("fluxpay-gateway", "POST /api/v1/collect/payments")
    ]
    assert any(s.name == "psp sandbox initiate" for s in spans)
    assert any(
        s.service == "fluxpay-webhook-dispatcher" and s.name.startswith("webhook POST")
        for s in spans
    )


async def test_provider_updates_arriving_out_of_order_still_tell_the_merchant_each_step(
    observed: Stack, merchant: Merchant, receiver: WebhookReceiver
) -> None:
    """`completed` (2) queued before `processing` (1), both handled at once by the
    orchestrator (prefetch 50): the merchant still gets created, processing, completed.
    A live mtn payment routes to the MTN connector, which this stack does not run, so the
    test plays the connector's two updates itself."""
    async with httpx.AsyncClient(
        base_url=f"{observed.base_url}/api/v1",
        headers={"Authorization": f"Bearer {merchant.live_key}"},
        timeout=15,
    ) as live:
        response = await live.post(
            "/collect/payments", json=payment_body("+22997000001"), headers=idempotency()
        )
        assert response.status_code == 201, response.text
        payment_id = uuid.UUID(response.json()["id"])
        updates = [
            ProviderPaymentUpdate(
                payment_id=payment_id,
                provider="mtn_momo",
                status=status,  # type: ignore[arg-type]
                psp_reference="mtn-ref-1",
                fee_minor=30 if status == "completed" else None,
                sequence=sequence,
                message_id=provider_update_id(payment_id, sequence),
            )
            for status, sequence in (("completed", 2), ("processing", 1))
        ]
        async with await aio_pika.connect(observed.infra.rabbitmq_url) as connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(PROVIDER.name, ensure=False)
            for update in updates:
                await exchange.publish(
                    aio_pika.Message(
                        update.to_bytes(),
                        message_id=str(update.message_id),
                        headers={"x-message-type": update.type},
                        content_type="application/json",
                    ),
                    routing_key=provider_update_key("mtn_momo", update.status),
                )

        async def told() -> list[str]:
            events = receiver.verified_events(merchant.webhook_secrets["live"])
            types = [
                str(e["type"])
                for e, _ in events
                if e["data"]["object"]["id"] == str(payment_id)  # type: ignore[index]
            ]
            return types if "collect.payment.completed" in types else []

        types = await wait_for(told, timeout=60, what="the completed webhook")
        # Whatever order the POSTs land in, the merchant heard of each step.
        await wait_for(
            lambda: _has_all(told, {"created", "processing", "completed"}),
            timeout=30,
            what=f"created, processing and completed (so far {types})",
        )
        final = await live.get(f"/collect/payments/{payment_id}")
        assert final.json()["status"] == "completed"


async def _has_all(told: Any, steps: set[str]) -> bool:
    return {f"collect.payment.{s}" for s in steps} <= set(await told())


async def test_inspect_shows_a_payment_as_every_service_holds_it(
    observed: Stack, merchant: Merchant, receiver: WebhookReceiver
) -> None:
    payment = await _paid_payment(merchant, receiver)
    payment_id = str(payment["id"])

    async def booked_and_delivered() -> dict[str, Any] | None:
        found = observed.admin("inspect", payment_id)
        one = found["payments"][0]  # type: ignore[index]
        deliveries = one["webhooks"]["deliveries"]
        done = [d for d in deliveries if d["status"] == "succeeded"]
        ledger_ok = len(one["ledger"]["journal_entries"]) == 1
        return one if ledger_ok and len(done) >= 3 else None

    one = await wait_for(booked_and_delivered, timeout=30, what="booked and delivered")
    assert one is not None
    assert one["payment"]["status"] == "completed"
    moves = [(t["from_status"], t["to_status"]) for t in one["transitions"]]
    assert moves == [(None, "pending"), ("pending", "processing"), ("processing", "completed")]
    attempt = one["connector"]["attempts"][0]
    assert attempt["status"] == "completed" and attempt["data"]["update_seq"] == 2
    entry = one["ledger"]["journal_entries"][0]
    assert sum(p["amount_minor"] for p in entry["postings"]) == 0
    events = {e["type"] for e in one["webhooks"]["events"]}
    assert {"collect.payment.created", "collect.payment.completed"} <= events
    # The same payment by its merchant reference and by its PSP reference.
    by_reference = observed.admin("inspect", str(payment["reference"]))
    psp_reference = str(one["payment"]["psp_reference"])
    by_psp = observed.admin("inspect", psp_reference)
    for found in (by_reference, by_psp):
        assert [p["payment"]["id"] for p in found["payments"]] == [payment_id]  # type: ignore[index]
    assert observed.admin("inspect", "no-such-payment")["count"] == 0


async def test_the_expiry_sweep_continues_the_payments_trace(
    observed: Stack, merchant: Merchant, receiver: WebhookReceiver, collector: OtlpReceiver
) -> None:
    """Work done long after the request (the sweep, then the webhook POST it causes) joins
    the trace the merchant's request opened, through the traceparent stored with it."""
    body = payment_body("+22997000003", expires_in_seconds=300)  # silent: it will expire
    response = await merchant.client.post("/collect/payments", json=body, headers=idempotency())
    assert response.status_code == 201, response.text
    payment_id = response.json()["id"]

    async def expired_trace() -> list[Any]:
        sweeps = [
            s
            for s in collector.snapshot()
            if s.name == "expire payment" and s.attributes.get("payment_id") == payment_id
        ]
        return sweeps

    sweeps = await wait_for(expired_trace, timeout=60, what="the expiry sweep's span")
    trace = collector.trace(sweeps[0].trace_id)
    roots = [(s.service, s.name) for s in trace if not s.parent_id]
    assert roots == [("fluxpay-gateway", "POST /api/v1/collect/payments")]

    async def expired_webhook_posted() -> bool:
        return any(
            s.name == "webhook POST" and s.attributes.get("event_type") == "collect.payment.expired"
            for s in collector.trace(sweeps[0].trace_id)
        )

    await wait_for(expired_webhook_posted, timeout=30, what="the expired webhook's POST span")
