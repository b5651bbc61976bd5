"""Poking a RabbitMQ queue from a test: a queue of its own, a raw body in, its depth out, and
a message to send."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import aio_pika

from fluxpay_common import topology
from fluxpay_common.messages import ProviderPaymentUpdate
from fluxpay_common.runtime import make_broker
from fluxpay_common.settings import ServiceSettings
from fluxpay_testing.infra import Infra


@contextlib.asynccontextmanager
async def fresh_route(
    infra: Infra, prefix: str, delivery_limit: int
) -> AsyncIterator[topology.Route]:
    """A command queue of the test's own (`prefix.<random>`), declared as the platform declares
    its queues (quorum, `delivery_limit`), with its DLQ. Only this queue: declaring the whole
    topology would make the platform's queues catch other tests' messages."""
    name = f"{prefix}.{uuid.uuid4().hex[:8]}"
    route = topology.Route(name, topology.COMMANDS, (name,))
    settings = ServiceSettings(RABBITMQ_URL=infra.rabbitmq_url, DATABASE_URL=infra.database_url)
    broker = make_broker(settings)
    await broker.connect()
    try:
        await broker.declare_queue(route.rabbit_queue(delivery_limit))
        dead_letter = await broker.declare_exchange(topology.DEAD_LETTER)
        dlq = await broker.declare_queue(route.dead_letter_queue())
        await dlq.bind(dead_letter, routing_key=route.queue)
        yield route
    finally:
        await broker.stop()


async def publish_raw(channel: aio_pika.abc.AbstractChannel, queue: str, body: bytes) -> None:
    """`body` straight onto `queue` (default exchange): no contract, no outbox."""
    await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)


async def queue_depth(channel: aio_pika.abc.AbstractChannel, name: str) -> int:
    """Messages ready on the queue now (a passive declare: the queue must exist)."""
    queue = await channel.declare_queue(name, passive=True)
    return int(queue.declaration_result.message_count or 0)


def failed_update(failure_code: str | None = None) -> ProviderPaymentUpdate:
    """A sandbox provider's `failed` report of a payment of its own."""
    return ProviderPaymentUpdate(
        payment_id=uuid.uuid4(), provider="sandbox", status="failed", failure_code=failure_code
    )
