"""The batch consumer on the real RabbitMQ: one ack for a batch, the platform's DLQ policy."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import aio_pika
import pytest
from fluxpay_testing.infra import Infra, wait_for
from fluxpay_testing.queues import failed_update, fresh_route, publish_raw, queue_depth
from prometheus_client import REGISTRY

from fluxpay_common import topology
from fluxpay_common.batch_consumer import BatchConsumer, Late
from fluxpay_common.consumer import DeadLetter
from fluxpay_common.messages import ProviderPaymentUpdate, provider_update_adapter

DELIVERY_LIMIT = 3


@pytest.fixture
async def channel(infra: Infra) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(infra.rabbitmq_url)
    yield await connection.channel()
    await connection.close()


@pytest.fixture
async def route(infra: Infra) -> AsyncIterator[topology.Route]:
    async with fresh_route(infra, "test.batch", DELIVERY_LIMIT) as route:
        yield route


async def test_a_batch_is_handled_in_order_in_one_call_and_acknowledged_at_once(
    infra, channel, route
) -> None:
    updates = [failed_update() for _ in range(5)]
    for update in updates:
        await publish_raw(channel, route.queue, update.to_bytes())
    calls: list[list[uuid.UUID]] = []

    async def handler(batch: Sequence[ProviderPaymentUpdate]) -> None:
        calls.append([u.payment_id for u in batch])

    consumer = BatchConsumer(
        infra.rabbitmq_url, route, provider_update_adapter, handler, batch_size=10, retry_seconds=0
    )
    # The five messages fetched unacknowledged on one channel, handed over as one batch.
    connection = await aio_pika.connect(infra.rabbitmq_url)
    own = await connection.channel()
    queue = await own.get_queue(route.queue, ensure=False)
    batch = [await queue.get(no_ack=False) for _ in updates]
    await consumer.handle(batch)
    await connection.close()  # anything not acknowledged would return to the queue

    assert calls == [[u.payment_id for u in updates]]
    assert await queue_depth(channel, route.queue) == 0
    # Timed as one handler call (the metric the dashboards and the e2e metrics test read).
    timed_calls = {"queue": route.queue}
    assert REGISTRY.get_sample_value("fluxpay_handler_seconds_count", timed_calls) == 1


async def test_unparseable_and_poison_messages_are_dead_lettered_and_the_rest_handled(
    infra, channel, route
) -> None:
    good = [failed_update() for _ in range(3)]
    poison = failed_update("poison")
    bodies = [good[0].to_bytes(), b'{"not": "a contract"}', poison.to_bytes(), *(
        g.to_bytes() for g in good[1:]
    )]  # fmt: skip
    for body in bodies:
        await publish_raw(channel, route.queue, body)
    handled: list[uuid.UUID] = []

    async def handler(batch: Sequence[ProviderPaymentUpdate]) -> None:
        if any(u.failure_code == "poison" for u in batch):
            raise RuntimeError("a bug, not a transient failure")
        handled.extend(u.payment_id for u in batch)

    consumer = BatchConsumer(
        infra.rabbitmq_url,
        route,
        provider_update_adapter,
        handler,
        batch_size=10,
        retry_seconds=0,
        delivery_limit=DELIVERY_LIMIT,
    )
    task = asyncio.create_task(consumer.run())
    try:
        dlq = f"{route.queue}.dlq"
        await wait_for(lambda: _has(channel, dlq, 2), timeout=30, what="two dead letters")
        await wait_for(lambda: _has_all(handled, good), timeout=30, what="the good messages")
        await wait_for(lambda: _empty(channel, route.queue), timeout=30, what="all settled")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sorted(handled) == sorted(g.payment_id for g in good)  # each once
    queue = await channel.get_queue(f"{route.queue}.dlq", ensure=False)
    dead = []
    while (message := await queue.get(fail=False)) is not None:
        await message.ack()
        dead.append(message.body)
    assert sorted(dead) == sorted([b'{"not": "a contract"}', poison.to_bytes()])
    # Both counted where the operator is paged (FluxPayDeadLetters).
    for reason in ("unparseable", "handler_failed"):
        labels = {"queue": route.queue, "reason": reason}
        assert REGISTRY.get_sample_value("fluxpay_messages_dead_lettered_total", labels) == 1


async def test_a_dead_letter_raised_for_one_message_rejects_it_at_once_and_the_rest_handled(
    infra, channel, route
) -> None:
    good = [failed_update() for _ in range(3)]
    unbookable = failed_update("unbookable")
    for update in (good[0], unbookable, *good[1:]):
        await publish_raw(channel, route.queue, update.to_bytes())
    handled: list[uuid.UUID] = []
    tries: list[uuid.UUID] = []

    async def handler(batch: Sequence[ProviderPaymentUpdate]) -> None:
        tries.extend(u.payment_id for u in batch if u.failure_code == "unbookable")
        if any(u.failure_code == "unbookable" for u in batch):
            raise DeadLetter("redelivery cannot help")
        handled.extend(u.payment_id for u in batch)

    consumer = BatchConsumer(
        infra.rabbitmq_url, route, provider_update_adapter, handler, batch_size=10, retry_seconds=0
    )
    task = asyncio.create_task(consumer.run())
    try:
        dlq = f"{route.queue}.dlq"
        await wait_for(lambda: _has(channel, dlq, 1), timeout=30, what="the dead letter")
        await wait_for(lambda: _has_all(handled, good), timeout=30, what="the good messages")
        await wait_for(lambda: _empty(channel, route.queue), timeout=30, what="all settled")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sorted(handled) == sorted(g.payment_id for g in good)  # each once
    # Delivered once: tried in its batch and alone (a nack would bring it back up to the limit).
    assert len(tries) == 2
    queue = await channel.get_queue(dlq, ensure=False)
    message = await queue.get(fail=False)
    assert message is not None
    await message.ack()
    assert message.body == unbookable.to_bytes()
    assert message.headers["x-death"][0]["reason"] == "rejected"  # type: ignore[index]


async def _has(channel, name: str, n: int) -> bool:
    return await queue_depth(channel, name) >= n


async def _has_all(handled: list[uuid.UUID], good: list[ProviderPaymentUpdate]) -> bool:
    return {g.payment_id for g in good} <= set(handled)


async def _empty(channel, name: str) -> bool:
    return await queue_depth(channel, name) == 0


async def test_a_late_message_is_acknowledged_once_finished_while_later_batches_go_on(
    infra, channel, route
) -> None:
    """The first message can only finish once the second is handled, in a later batch: its
    work is returned as late, and the consumer reads on meanwhile."""
    first, second = failed_update(), failed_update()
    for update in (first, second):
        await publish_raw(channel, route.queue, update.to_bytes())
    second_handled = asyncio.Event()
    finished: list[uuid.UUID] = []

    async def finish_first() -> None:
        await second_handled.wait()
        finished.append(first.payment_id)

    async def handler(batch: Sequence[ProviderPaymentUpdate]) -> Late | None:
        if batch[0].payment_id == first.payment_id:
            return {0: finish_first}
        second_handled.set()
        return None

    consumer = BatchConsumer(
        infra.rabbitmq_url, route, provider_update_adapter, handler, batch_size=1, retry_seconds=0
    )
    task = asyncio.create_task(consumer.run())
    try:
        await wait_for(lambda: _settled(consumer, finished), timeout=30, what="both settled")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert finished == [first.payment_id]
    # Anything not acknowledged would be back in the queue once the consumer is gone.
    assert await queue_depth(channel, route.queue) == 0


async def _settled(consumer: BatchConsumer, finished: list[uuid.UUID]) -> bool:
    return bool(finished) and consumer.unsettled == 0
