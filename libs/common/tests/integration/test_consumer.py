"""`consumer.subscribe` on `Consumers` (aio-pika directly) against the real RabbitMQ and
PostgreSQL: the platform's DLQ policy, replies after commit, concurrency up to prefetch,
graceful stop and reconnection."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import pytest
from fluxpay_testing.infra import Infra, wait_for
from fluxpay_testing.proxy import TcpProxy
from fluxpay_testing.queues import failed_update, publish_raw, queue_depth
from prometheus_client import REGISTRY

from fluxpay_common import consumer, topology
from fluxpay_common.consumers import Consumers
from fluxpay_common.db import create_pool
from fluxpay_common.messages import (
    LedgerQuery,
    QueryReply,
    ledger_query_adapter,
    provider_update_adapter,
)
from fluxpay_common.rpc import RpcClient

DELIVERY_LIMIT = 3


@pytest.fixture
async def channel(infra: Infra) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(infra.rabbitmq_url)
    yield await connection.channel()
    await connection.close()


@pytest.fixture
async def route(channel: aio_pika.abc.AbstractChannel) -> topology.Route:
    """A fresh command queue declared as the platform declares its queues, with its DLQ."""
    name = f"test.consumer.{uuid.uuid4().hex[:8]}"
    route = topology.Route(name, topology.COMMANDS, (name,))
    declared = route.rabbit_queue(DELIVERY_LIMIT)
    queue = await channel.declare_queue(name, durable=True, arguments=declared.arguments)
    commands = await channel.declare_exchange(
        topology.COMMANDS.name, aio_pika.ExchangeType.DIRECT, durable=True
    )
    await queue.bind(commands, routing_key=name)
    dead_letter = await channel.declare_exchange(
        topology.DEAD_LETTER.name, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dlq = await channel.declare_queue(
        f"{name}.dlq", durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dlq.bind(dead_letter, routing_key=name)
    return route


def _dead_lettered(route: topology.Route, reason: str) -> float:
    labels = {"queue": route.queue, "reason": reason}
    return REGISTRY.get_sample_value("fluxpay_messages_dead_lettered_total", labels) or 0.0


async def _consuming(url: str, route: topology.Route, handler, prefetch: int = 10) -> Consumers:
    consumers = Consumers(url, prefetch, graceful_timeout=10)
    consumer.subscribe(
        consumers,
        route,
        provider_update_adapter,
        handler,
        delivery_limit=DELIVERY_LIMIT,
        retry_seconds=0.1,
    )
    await consumers.start()
    return consumers


async def test_unparseable_message_is_dead_lettered_at_once(infra, channel, route) -> None:
    handled: list[object] = []

    async def handler(update, _):
        handled.append(update)

    consumers = await _consuming(infra.rabbitmq_url, route, handler)
    await publish_raw(channel, route.queue, b'{"not": "a contract"}')
    await wait_for(lambda: queue_depth(channel, f"{route.queue}.dlq"), what="the dead letter")
    await consumers.stop()
    assert handled == []
    assert _dead_lettered(route, "unparseable") == 1


async def test_failing_handler_is_redelivered_up_to_the_delivery_limit_then_dead_lettered(
    infra, channel, route
) -> None:
    attempts: list[int] = []

    async def handler(update, msg):
        attempts.append(int((msg.headers or {}).get("x-delivery-count") or 0))
        raise RuntimeError("a bug, not a transient failure")

    consumers = await _consuming(infra.rabbitmq_url, route, handler)
    await publish_raw(channel, route.queue, failed_update().to_bytes())
    await wait_for(lambda: queue_depth(channel, f"{route.queue}.dlq"), what="the dead letter")
    await consumers.stop()
    # Delivered, returned DELIVERY_LIMIT times, then dead-lettered by the quorum queue.
    assert len(attempts) == DELIVERY_LIMIT + 1
    assert _dead_lettered(route, "handler_failed") == 1, "counted once, on the last delivery"
    assert await queue_depth(channel, route.queue) == 0


async def test_dead_letter_raised_by_a_handler_is_not_redelivered(infra, channel, route) -> None:
    attempts: list[uuid.UUID] = []

    async def handler(update, _):
        attempts.append(update.payment_id)
        raise consumer.DeadLetter("redelivery cannot help")

    consumers = await _consuming(infra.rabbitmq_url, route, handler)
    await publish_raw(channel, route.queue, failed_update().to_bytes())
    await wait_for(lambda: queue_depth(channel, f"{route.queue}.dlq"), what="the dead letter")
    await consumers.stop()
    assert len(attempts) == 1


async def test_reply_is_sent_after_the_handlers_commit_and_the_request_acked(
    infra, channel, route
) -> None:
    pool = await create_pool(infra.database_url, "public")
    await pool.execute("CREATE TABLE IF NOT EXISTS consumer_test_effect (message_id uuid)")
    seen_at_reply: list[bool] = []

    async def handler(query, _):
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO consumer_test_effect VALUES ($1)", query.message_id)
        return QueryReply(data={"booked": str(query.message_id)})

    consumers = Consumers(infra.rabbitmq_url, 10)
    consumer.subscribe(
        consumers, route, ledger_query_adapter, handler, delivery_limit=3, retry_seconds=0.1
    )
    await consumers.start()
    client = RpcClient(infra.rabbitmq_url, topology.COMMANDS.name, route.queue)
    await client.start()
    query = LedgerQuery(type="ledger.balance", merchant_id=uuid.uuid4(), environment="test")
    reply = await client.call(query, QueryReply, timeout=5)
    seen_at_reply.append(await _effect_exists(pool, query.message_id))
    await client.stop()
    await consumers.stop()
    await pool.close()
    assert reply.data == {"booked": str(query.message_id)}
    assert seen_at_reply == [True]
    assert await queue_depth(channel, route.queue) == 0
    assert await queue_depth(channel, f"{route.queue}.dlq") == 0


async def _effect_exists(pool: asyncpg.Pool, message_id: uuid.UUID) -> bool:
    found = await pool.fetchval(
        "SELECT 1 FROM consumer_test_effect WHERE message_id = $1", message_id
    )
    return found is not None


async def test_a_queue_handles_up_to_prefetch_messages_at_once(infra, channel, route) -> None:
    release = asyncio.Event()
    in_hand: list[uuid.UUID] = []
    done: list[uuid.UUID] = []
    most = 0

    async def handler(update, _):
        nonlocal most
        in_hand.append(update.payment_id)
        most = max(most, len(in_hand))
        await release.wait()
        in_hand.remove(update.payment_id)
        done.append(update.payment_id)

    consumers = await _consuming(infra.rabbitmq_url, route, handler, prefetch=3)
    for _ in range(5):
        await publish_raw(channel, route.queue, failed_update().to_bytes())
    await wait_for(lambda: _ready(len(in_hand) == 3), what="three messages in hand")
    release.set()
    await wait_for(lambda: _ready(len(done) == 5), what="all five handled")
    await consumers.stop()
    assert most == 3


async def _ready(value: bool) -> bool:
    return value


async def test_graceful_stop_lets_the_message_in_hand_finish_and_acks_it(
    infra, channel, route
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    handled: list[uuid.UUID] = []

    async def handler(update, _):
        entered.set()
        await release.wait()
        handled.append(update.payment_id)

    consumers = await _consuming(infra.rabbitmq_url, route, handler)
    await publish_raw(channel, route.queue, failed_update().to_bytes())
    await asyncio.wait_for(entered.wait(), 10)
    stopping = asyncio.create_task(consumers.stop())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not stopping.done(), "stop waits for the message in hand"
    release.set()
    await asyncio.wait_for(stopping, 10)
    assert len(handled) == 1
    assert await queue_depth(channel, route.queue) == 0, "acknowledged, not returned"


async def test_consumers_come_back_after_the_connection_drops(infra, channel, route) -> None:
    parts = urlsplit(infra.rabbitmq_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5672))
    await proxy.restore()
    handled: list[uuid.UUID] = []

    async def handler(update, _):
        handled.append(update.payment_id)

    consumers = await _consuming(proxy.url(infra.rabbitmq_url), route, handler)
    assert await consumers.attached()
    await proxy.cut()
    await wait_for(lambda: _not(consumers.attached()), what="the consumers detached")
    after = failed_update()
    await publish_raw(channel, route.queue, after.to_bytes())
    await proxy.restore()
    await wait_for(consumers.attached, timeout=30, what="the consumers back")
    await wait_for(lambda: _ready(after.payment_id in handled), what="the message handled")
    await consumers.stop()
    await proxy.cut()
    assert handled == [after.payment_id]


async def _not(check) -> bool:
    return not await check
