"""Outbox, inbox and dead-lettering against the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import pytest
from faststream.rabbit import RabbitBroker
from fluxpay_testing.infra import Infra, wait_for

from fluxpay_common import consumer, inbox, topology
from fluxpay_common.consumers import Consumers
from fluxpay_common.db import create_pool, migrate
from fluxpay_common.messages import (
    LedgerQuery,
    ProviderPaymentUpdate,
    QueryReply,
    ledger_query_adapter,
    provider_update_adapter,
)
from fluxpay_common.outbox import OutboxRelay, add_to_outbox
from fluxpay_common.rpc import DEADLINE_HEADER, RpcClient
from fluxpay_common.runtime import make_broker, make_consumers
from fluxpay_common.settings import ServiceSettings

SCHEMA = "common_test"


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(infra.database_url, SCHEMA)
    await migrate(pool, SCHEMA, None)
    yield pool
    await pool.close()


@pytest.fixture
def settings(infra: Infra) -> ServiceSettings:
    return ServiceSettings(RABBITMQ_URL=infra.rabbitmq_url, DATABASE_URL=infra.database_url)


def _update(provider: str = "sandbox") -> ProviderPaymentUpdate:
    return ProviderPaymentUpdate(payment_id=uuid.uuid4(), provider=provider, status="completed")


async def _bind_probe_queue(
    url: str, key: str
) -> tuple[aio_pika.abc.AbstractConnection, aio_pika.abc.AbstractQueue]:
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        topology.PROVIDER.name, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key=key)
    return connection, queue


async def test_outbox_publishes_exactly_the_committed_rows(pool, settings) -> None:
    key = f"provider.probe{uuid.uuid4().hex[:6]}.completed"
    connection, queue = await _bind_probe_queue(settings.rabbitmq_url.get_secret_value(), key)
    committed, rolled_back = _update(), _update()
    async with pool.acquire() as conn, conn.transaction():
        await add_to_outbox(conn, topology.PROVIDER, key, committed)
    with contextlib.suppress(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await add_to_outbox(conn, topology.PROVIDER, key, rolled_back)
            raise RuntimeError("abort the transaction")
    broker = make_broker(settings)
    await broker.connect()
    relay = OutboxRelay(pool, broker)
    while await relay.publish_pending():
        pass
    seen: list[uuid.UUID] = []

    async def drain() -> list[uuid.UUID]:
        message = await queue.get(fail=False, no_ack=True)
        if message is not None:
            seen.append(ProviderPaymentUpdate.model_validate_json(message.body).payment_id)
        return seen

    await wait_for(drain, what="the committed message")
    await asyncio.sleep(0)  # let any stray delivery arrive before the final count
    while await queue.get(fail=False, no_ack=True) is not None:
        seen.append(uuid.uuid4())
    assert seen == [committed.payment_id]
    pending = await pool.fetchval(
        "SELECT count(*) FROM outbox_message WHERE published_at IS NULL AND message_id = $1",
        committed.message_id,
    )
    assert pending == 0
    await broker.stop()
    await connection.close()


async def test_redelivered_message_has_its_effect_once(pool) -> None:
    message_id = uuid.uuid4()
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS effect (message_id uuid, n int)")
    for _ in range(3):
        async with pool.acquire() as conn, conn.transaction():
            if await inbox.claim(conn, message_id, "test"):
                await conn.execute("INSERT INTO effect VALUES ($1, 1)", message_id)
    assert await pool.fetchval("SELECT count(*) FROM effect WHERE message_id=$1", message_id) == 1


async def _dead_letters(url: str, queue_name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name, ensure=True)
        found = []
        while (message := await queue.get(fail=False)) is not None:
            await message.ack()
            found.append(message)
        return found
    finally:
        await connection.close()


async def test_malformed_and_poison_messages_land_in_the_dead_letter_queue(settings) -> None:
    url = settings.rabbitmq_url.get_secret_value()
    handled: list[uuid.UUID] = []

    async def handler(update, msg):
        if update.failure_code == "poison":
            raise RuntimeError("a bug, not a transient failure")
        handled.append(update.payment_id)
        return None

    # The vhost is shared by the whole run: declare the queues exactly as every service does,
    # or RabbitMQ refuses the later declarations (inequivalent x-delivery-limit).
    broker = make_broker(settings)
    consumers = make_consumers(settings)
    consumer.subscribe(
        consumers,
        topology.ORCHESTRATOR_PROVIDER_UPDATES,
        provider_update_adapter,
        handler,
        delivery_limit=settings.delivery_limit,
        retry_seconds=0.1,
    )
    await broker.start()
    await topology.declare_topology(broker, delivery_limit=settings.delivery_limit)
    await consumers.start()
    good = _update()
    poison = ProviderPaymentUpdate(
        payment_id=uuid.uuid4(), provider="sandbox", status="failed", failure_code="poison"
    )
    for body in (b'{"not": "a contract"}', poison.to_bytes(), good.to_bytes()):
        await broker.publish(body, exchange=topology.PROVIDER.name, routing_key="provider.x.y")
    dlq = f"{topology.ORCHESTRATOR_PROVIDER_UPDATES.queue}.dlq"
    found: list = []

    refused = {b'{"not": "a contract"}', poison.to_bytes()}

    # The queue is shared by the run: other tests' provider updates (connectors publish
    # them, no orchestrator consumes them there) may be in it too; only ours are judged.
    async def both_dead() -> bool:
        found.extend(await _dead_letters(url, dlq))
        return refused <= {m.body for m in found}

    await wait_for(both_dead, timeout=30, what="two dead letters")
    await wait_for(lambda: _ready([p for p in handled if p == good.payment_id]), what="good")
    assert handled.count(good.payment_id) == 1 and poison.payment_id not in handled
    await consumers.stop()
    await broker.stop()


async def _ready(items: list) -> bool:
    return bool(items)


class Served:
    """A broker (publishing) and consumers answering ledger queries on a fresh route."""

    def __init__(self, broker: RabbitBroker, consumers: Consumers, name: str) -> None:
        self.broker, self.consumers, self.name = broker, consumers, name

    async def stop(self) -> None:
        await self.consumers.stop()
        await self.broker.stop()


async def _serve_ledger_queries(settings, handler, delivery_limit: int = 5) -> Served:
    """Consumers answering ledger queries on a fresh command route, with its DLQ."""
    name = f"test.rpc.{uuid.uuid4().hex[:8]}"
    route = topology.Route(name, topology.COMMANDS, (name,))
    broker, consumers = make_broker(settings), make_consumers(settings)
    consumer.subscribe(
        consumers,
        route,
        ledger_query_adapter,
        handler,
        delivery_limit=delivery_limit,
        retry_seconds=0.1,
    )
    await broker.connect()
    exchange = await broker.declare_exchange(topology.COMMANDS)
    queue = await broker.declare_queue(route.rabbit_queue(delivery_limit))
    await queue.bind(exchange, routing_key=name)
    dead_letter = await broker.declare_exchange(topology.DEAD_LETTER)
    dlq = await broker.declare_queue(route.dead_letter_queue())
    await dlq.bind(dead_letter, routing_key=route.queue)
    await broker.start()
    await consumers.start()
    return Served(broker, consumers, name)


async def test_a_failing_request_is_answered_at_once_and_kept_in_its_dlq(settings) -> None:
    """A caller waiting on request/reply hears `internal_error` instead of timing out."""
    url = settings.rabbitmq_url.get_secret_value()

    async def handler(query, msg):
        raise RuntimeError("a bug in the handler")

    served = await _serve_ledger_queries(settings, handler)
    name = served.name
    client = RpcClient(url, topology.COMMANDS.name, name)
    await client.start()
    query = LedgerQuery(type="ledger.balance", merchant_id=uuid.uuid4(), environment="test")
    reply = await client.call(query, QueryReply, timeout=5)
    assert reply.error is not None and reply.error.code == "internal_error"
    assert reply.error.status == 500
    found: list = []

    async def dead() -> bool:
        found.extend(await _dead_letters(url, f"{name}.dlq"))
        return bool(found)

    await wait_for(dead, timeout=20, what="the failed request in its DLQ")
    assert LedgerQuery.model_validate_json(found[0].body).message_id == query.message_id
    await client.stop()
    await served.stop()


async def test_a_request_its_handler_leaves_unanswered_is_answered_at_once(settings) -> None:
    """A handler that returns nothing to a request: the caller hears `service_unavailable`
    now, rather than silence until its timeout."""
    url = settings.rabbitmq_url.get_secret_value()

    async def handler(query, msg):
        return None

    served = await _serve_ledger_queries(settings, handler)
    name = served.name
    client = RpcClient(url, topology.COMMANDS.name, name)
    await client.start()
    query = LedgerQuery(type="ledger.balance", merchant_id=uuid.uuid4(), environment="test")
    reply = await client.call(query, QueryReply, timeout=10)
    assert reply.error is not None and reply.error.code == "service_unavailable"
    assert reply.error.status == 503
    await client.stop()
    await served.stop()


async def test_a_request_past_its_deadline_is_skipped_not_dead_lettered(settings) -> None:
    url = settings.rabbitmq_url.get_secret_value()
    handled: list[uuid.UUID] = []

    async def handler(query, msg):
        handled.append(query.message_id)
        return QueryReply(data={"ok": True})

    served = await _serve_ledger_queries(settings, handler)
    name = served.name
    stale = LedgerQuery(type="ledger.balance", merchant_id=uuid.uuid4(), environment="test")
    await served.broker.publish(
        stale.to_bytes(),
        exchange=topology.COMMANDS.name,
        routing_key=name,
        reply_to="a-caller-long-gone",
        headers={DEADLINE_HEADER: "1000.0"},
    )
    client = RpcClient(url, topology.COMMANDS.name, name)
    await client.start()
    fresh = LedgerQuery(type="ledger.balance", merchant_id=uuid.uuid4(), environment="test")
    assert (await client.call(fresh, QueryReply, timeout=5)).data == {"ok": True}
    # Queues are FIFO: the stale request was seen (and skipped) before the fresh one.
    assert handled == [fresh.message_id]
    assert await _dead_letters(url, f"{name}.dlq") == []
    await client.stop()
    await served.stop()
