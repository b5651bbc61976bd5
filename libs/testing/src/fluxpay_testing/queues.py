"""Poking a RabbitMQ queue from a test: a raw body in, its depth out, and a message to send."""

from __future__ import annotations

import uuid

import aio_pika

from fluxpay_common.messages import ProviderPaymentUpdate


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
