"""A connector worker in-process against the test run's PostgreSQL and RabbitMQ vhost.

The worker is wired exactly as `serve_worker` wires it (same `register` and `started`
hooks); tests publish commands on `fluxpay.commands` and read the normalized updates from
their own queue bound to `fluxpay.provider` `provider.#`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

import aio_pika
import asyncpg
import pytest
import uvicorn
from fluxpay_testing.infra import Infra, wait_for

from fluxpay_common import topology
from fluxpay_common.db import create_pool, migrate
from fluxpay_common.messages import (
    ConnectorCommand,
    InitiatePayment,
    ProviderPaymentUpdate,
    ProviderRefundUpdate,
    provider_update_adapter,
)
from fluxpay_common.outbox import OutboxRelay
from fluxpay_common.runtime import Supervisor, WorkerContext, make_broker
from provider_connectors.bootstrap import ConnectorWorker
from provider_connectors.config import Settings

SCHEMA = "connectors"


@dataclass
class RunningWorker:
    ctx: WorkerContext
    worker: ConnectorWorker
    http: HttpServer | None = None

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.stop()
        await self.ctx.consumers.stop()
        # Then the rows their commits handed over are published and marked.
        await self.ctx.relay.close()
        await self.ctx.supervisor.stop()
        await self.ctx.broker.stop()
        await self.ctx.pool.close()


async def start_worker(infra: Infra, **overrides: Any) -> RunningWorker:
    """Start pool, migrations, subscriber, topology, relay and poller, as serve_worker does."""
    settings = Settings(
        RABBITMQ_URL=infra.rabbitmq_url,
        DATABASE_URL=infra.database_url,
        **{
            "provider": "sandbox",
            "sandbox_delay_seconds": 0.3,
            "connector_poll_interval_seconds": 0.05,
            "handler_retry_seconds": 2.0,
            **overrides,
        },
    )
    pool = await create_pool(settings.database_url.get_secret_value(), SCHEMA)
    await migrate(pool, SCHEMA, resources.files("provider_connectors") / "migrations")
    broker = make_broker(settings)
    ctx = WorkerContext(
        f"connector-{settings.provider}",
        settings,
        pool,
        broker,
        Supervisor(),
        OutboxRelay(pool, broker, idle_poll_seconds=0.2),
    )
    worker = ConnectorWorker(settings)
    await worker.register(ctx)
    await broker.connect()
    await topology.declare_topology(broker, settings.delivery_limit)
    await broker.start()
    await ctx.consumers.start()
    ctx.supervisor.start("outbox-relay", ctx.relay.run)
    await worker.started(ctx)
    http = None
    if settings.connector_http_port is not None:
        http = await HttpServer.start(worker.http_app(ctx), settings.connector_http_port)
    return RunningWorker(ctx, worker, http)


class _TestServer(uvicorn.Server):
    """Leaves the test process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class HttpServer:
    """uvicorn in the test's event loop (a connector's callbacks, or a PSP simulator)."""

    server: uvicorn.Server
    task: asyncio.Task[None]

    @classmethod
    async def start(cls, app: Any, port: int) -> HttpServer:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = _TestServer(config)
        task = asyncio.create_task(server.serve())

        async def up() -> bool:
            if task.done():
                task.result()
            return server.started

        await wait_for(up, timeout=10, what=f"HTTP server on port {port}")
        return cls(server, task)

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


@dataclass
class Updates:
    """Every provider update seen on the probe queue, by payment id."""

    by_payment: dict[uuid.UUID, list[tuple[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    seen: set[uuid.UUID] = field(default_factory=set)

    def on_message(self, routing_key: str, body: bytes) -> None:
        """Deduplicated by message_id, as the orchestrator does: the outbox relay may
        publish a message again after a stop between publishing and stamping it."""
        update = provider_update_adapter.validate_json(body)
        if update.message_id in self.seen:
            return
        self.seen.add(update.message_id)
        self.by_payment[update.payment_id].append((routing_key, update))

    def statuses(self, payment_id: uuid.UUID) -> list[str]:
        return [
            u.status for _, u in self.by_payment[payment_id] if isinstance(u, ProviderPaymentUpdate)
        ]

    def refunds(self, payment_id: uuid.UUID) -> list[ProviderRefundUpdate]:
        return [u for _, u in self.by_payment[payment_id] if isinstance(u, ProviderRefundUpdate)]

    def payment_updates(self, payment_id: uuid.UUID) -> list[tuple[str, ProviderPaymentUpdate]]:
        return [
            (k, u) for k, u in self.by_payment[payment_id] if isinstance(u, ProviderPaymentUpdate)
        ]

    async def wait_status(
        self, payment_id: uuid.UUID, status: str, timeout: float = 15
    ) -> ProviderPaymentUpdate:
        async def seen() -> ProviderPaymentUpdate | None:
            return next(
                (u for _, u in self.payment_updates(payment_id) if u.status == status), None
            )

        return await wait_for(seen, timeout=timeout, what=f"{status} update for {payment_id}")


@pytest.fixture(scope="session")
async def provider_updates(infra: Infra) -> AsyncIterator[Updates]:
    connection = await aio_pika.connect(infra.rabbitmq_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        topology.PROVIDER.name, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key="provider.#")
    updates = Updates()

    async def consume(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            updates.on_message(message.routing_key or "", message.body)

    await queue.consume(consume)
    yield updates
    await connection.close()


@pytest.fixture(scope="module")
async def sandbox_worker(infra: Infra, provider_updates: Updates) -> AsyncIterator[RunningWorker]:
    running = await start_worker(infra)
    yield running
    await running.stop()


Publish = Callable[[ConnectorCommand], Awaitable[None]]


@pytest.fixture(scope="session")
async def publish_command(infra: Infra) -> AsyncIterator[Publish]:
    connection = await aio_pika.connect(infra.rabbitmq_url)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(topology.COMMANDS.name, ensure=False)

    async def publish(command: ConnectorCommand) -> None:
        await exchange.publish(
            aio_pika.Message(
                command.to_bytes(),
                message_id=str(command.message_id),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=topology.connector_key(command.provider),
        )

    yield publish
    with contextlib.suppress(Exception):
        await connection.close()


@pytest.fixture(scope="session")
async def connectors_db(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(infra.database_url, SCHEMA, min_size=1, max_size=4)
    yield pool
    await pool.close()


def _initiate_command(
    phone: str,
    *,
    operator: str = "mtn",
    amount: int = 3000,
    expires_at: datetime | None = None,
    provider: str = "sandbox",
    environment: str = "test",
) -> InitiatePayment:
    return InitiatePayment(
        correlation_id=f"corr-{uuid.uuid4().hex[:8]}",
        payment_id=uuid.uuid4(),
        merchant_id=uuid.uuid4(),
        environment=environment,  # type: ignore[arg-type]
        provider=provider,
        reference=f"order-{uuid.uuid4()}",
        amount=amount,
        currency="XOF",
        country="BJ",
        operator=operator,
        phone=phone,
        customer={"phone": phone, "name": "Awa Test"},
        description="integration test",
        expires_at=expires_at,
    )


@pytest.fixture(scope="session")
def make_initiate() -> Callable[..., InitiatePayment]:
    return _initiate_command


@pytest.fixture(scope="session")
def outbox_keys(connectors_db: asyncpg.Pool) -> Callable[[uuid.UUID], Awaitable[list[str]]]:
    """Routing keys of the updates written to the outbox for a payment, in order."""

    async def keys(payment_id: uuid.UUID) -> list[str]:
        rows = await connectors_db.fetch(
            "SELECT routing_key FROM outbox_message"
            " WHERE convert_from(body, 'UTF8')::jsonb ->> 'payment_id' = $1 ORDER BY id",
            str(payment_id),
        )
        return [r["routing_key"] for r in rows]

    return keys


@pytest.fixture(scope="session")
def worker_factory(infra: Infra) -> Callable[..., Awaitable[RunningWorker]]:
    """Start an extra worker (e.g. to simulate a restart); the caller stops it."""

    async def start(**overrides: Any) -> RunningWorker:
        return await start_worker(infra, **overrides)

    return start


@pytest.fixture(scope="session")
def http_server() -> Callable[[Any, int], Awaitable[HttpServer]]:
    return HttpServer.start
