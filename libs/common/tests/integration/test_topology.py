"""The topology as every service declares it, on the real RabbitMQ: what each queue hears,
and an earlier release's bindings removed from a running broker."""

from __future__ import annotations

import uuid

import pytest
from fluxpay_testing.infra import wait_for

from fluxpay_common import topology
from fluxpay_common.runtime import make_broker
from fluxpay_common.settings import ServiceSettings


@pytest.fixture
def settings(infra) -> ServiceSettings:  # type: ignore[no-untyped-def]
    return ServiceSettings(RABBITMQ_URL=infra.rabbitmq_url, DATABASE_URL=infra.database_url)


async def test_the_gateway_hears_its_payments_outcomes_only_and_old_bindings_go(
    settings: ServiceSettings,
) -> None:
    route = topology.GATEWAY_EVENTS
    broker = make_broker(settings)
    await broker.connect()
    # The queue as an earlier release left it: bound to every payment's outcome.
    queue = await broker.declare_queue(route.rabbit_queue(settings.delivery_limit))
    events = await broker.declare_exchange(topology.EVENTS)
    for outcome in topology.GATEWAY_OUTCOMES:
        await queue.bind(events, routing_key=f"collect.payment.{outcome}")
    await topology.declare_topology(broker, delivery_limit=settings.delivery_limit)
    await queue.purge()
    marker = uuid.uuid4().hex.encode()
    for outcome in topology.GATEWAY_OUTCOMES:
        await broker.publish(
            b"any payment", exchange=topology.EVENTS.name, routing_key=f"collect.payment.{outcome}"
        )
    for outcome in topology.GATEWAY_OUTCOMES:
        key = topology.gateway_payment_key(outcome)
        await broker.publish(marker + key.encode(), exchange=topology.EVENTS.name, routing_key=key)
    bodies: list[bytes] = []

    async def all_heard() -> bool:
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            bodies.append(message.body)
        return len([b for b in bodies if b.startswith(marker)]) == len(topology.GATEWAY_OUTCOMES)

    # Published before the gateway's own: had they been routed, they would come first.
    await wait_for(all_heard, timeout=10, what="the gateway's outcomes")
    assert bodies == [
        marker + topology.gateway_payment_key(o).encode() for o in topology.GATEWAY_OUTCOMES
    ]
    await broker.stop()


def test_only_payments_the_gateway_started_are_its_own() -> None:
    assert topology.is_gateway_payment({topology.PAYMENT_LINK_USE_KEY: str(uuid.uuid4())})
    assert topology.is_gateway_payment({topology.DUE_KEY: str(uuid.uuid4()), "period": "2026-11"})
    assert not topology.is_gateway_payment({"order": "42", topology.DUE_KEY: None})
    assert not topology.is_gateway_payment(None)


def test_webhooks_and_ledger_never_hear_the_gateways_copies() -> None:
    """The copies are for the gateway alone: merchants and the books hear each outcome once."""
    for route in (topology.WEBHOOK_EVENTS, topology.LEDGER_EVENTS):
        for key in route.binding_keys:
            assert not key.startswith("gateway.") and key != "#"
    assert not [k for k in topology.WEBHOOK_EVENTS.binding_keys if k.split(".")[0] in ("*", "#")]
