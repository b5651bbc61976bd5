"""The merchant HTTP API (FluxPay Collect API, /api/v1) on FastAPI, with FastStream for
the broker (outbox relay publishing, topology) through `faststream-fastapi`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable
from importlib import resources
from typing import Any

import asyncpg
import uvicorn
from fastapi import Depends, FastAPI
from faststream.rabbit import RabbitBroker
from faststream_fastapi import FastStreamAPI

from api_gateway import dues_scheduler, errors, payment_events
from api_gateway.access import limit_public
from api_gateway.admission import AdmissionLimit, CreateAdmission
from api_gateway.config import Settings
from api_gateway.edge import EdgeGuard, refuse_bad_path_parameters
from api_gateway.idempotency import IdempotencyStore
from api_gateway.middleware import Correlation, UntilStarted
from api_gateway.observability import ObservedRequests
from api_gateway.ratelimit import RateLimiter, limits_from
from api_gateway.routes import (
    account,
    api_keys,
    audit,
    checkout,
    collect,
    docs,
    dues,
    event_stream,
    lists,
    payment_links,
)
from api_gateway.rpc import Orchestrator, QueryService
from fluxpay_common import runtime
from fluxpay_common.consumer import subscribe
from fluxpay_common.consumers import Consumers
from fluxpay_common.db import create_pool, migrate
from fluxpay_common.health import Readiness, health_router
from fluxpay_common.logging import get_logger
from fluxpay_common.messages import Message, domain_event_adapter
from fluxpay_common.metrics import metrics_router
from fluxpay_common.outbox import OutboxRelay
from fluxpay_common.rpc import RpcClient
from fluxpay_common.topology import (
    COMMANDS,
    GATEWAY_EVENTS,
    LEDGER_QUERIES_KEY,
    ORCHESTRATOR_COMMANDS_KEY,
    WEBHOOK_COMMANDS_KEY,
    declare_topology,
)

log = get_logger(__name__)
SCHEMA = "gateway"
MIGRATIONS = resources.files("api_gateway") / "migrations"
# Answered before start-up completes (probes); later operator routes such as /metrics join.
HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class GatewayRuntime:
    """What the gateway opens at start, each step retried until its dependency answers, so
    a gateway started before PostgreSQL or RabbitMQ is alive and not ready, not crashed."""

    def __init__(self, settings: Settings, broker: RabbitBroker) -> None:
        self.settings = settings
        self.broker = broker
        self.readiness = Readiness("gateway", broker=broker)
        self.stop = asyncio.Event()
        self.supervisor = runtime.Supervisor()
        self.relay: OutboxRelay | None = None
        self.consumer: Consumers | None = None
        url = settings.rabbitmq_url.get_secret_value()
        self.clients = {
            key: RpcClient(url, COMMANDS.name, key)
            for key in (ORCHESTRATOR_COMMANDS_KEY, LEDGER_QUERIES_KEY, WEBHOOK_COMMANDS_KEY)
        }

    async def start(self, app: FastAPI) -> None:
        settings, stop = self.settings, self.stop
        pool = await runtime.keep_trying("database", self._open_pool, stop)
        self.readiness.pool = pool
        await runtime.keep_trying("migrations", lambda: migrate(pool, SCHEMA, MIGRATIONS), stop)
        for key, client in self.clients.items():
            await runtime.keep_trying(f"rpc {key}", client.start, stop)
        await runtime.keep_trying("broker", self._connect_broker, stop)
        self.relay = OutboxRelay(pool, self.broker)
        idempotency = IdempotencyStore(
            pool, settings.idempotency_ttl_hours, settings.idempotency_lock_seconds
        )
        self.supervisor.start("outbox-relay", self.relay.run)
        self.supervisor.start(
            "idempotency-purge", lambda: runtime.every(600, idempotency.purge_expired)
        )
        limiter = RateLimiter(pool, limits_from(settings))
        self.supervisor.start("rate-limit-purge", lambda: runtime.every(60, limiter.purge))
        self.consumer = payment_event_consumer(settings, pool)
        await runtime.keep_trying("payment events consumer", self.consumer.start, stop)
        app.state.pool = pool
        app.state.orchestrator = Orchestrator(
            self.clients[ORCHESTRATOR_COMMANDS_KEY], settings.rpc_timeout
        )
        app.state.idempotency = idempotency
        app.state.limiter = limiter
        app.state.ledger = QueryService(self.clients[LEDGER_QUERIES_KEY], settings.rpc_timeout)
        app.state.webhooks = QueryService(self.clients[WEBHOOK_COMMANDS_KEY], settings.rpc_timeout)
        app.state.orchestrator_queries = QueryService(
            self.clients[ORCHESTRATOR_COMMANDS_KEY], settings.rpc_timeout
        )
        self._start_dues_scheduler(app, pool)
        app.state.started = True
        log.info("gateway_started", host=settings.gateway_host, port=settings.gateway_port)

    def _start_dues_scheduler(self, app: FastAPI, pool: asyncpg.Pool) -> None:
        settings = self.settings
        app.state.dues_policy = dues_scheduler.DuesPolicy(settings.dues_payment_window_seconds)
        if settings.dues_scheduler_seconds <= 0:
            return
        self.supervisor.start(
            "dues-scheduler",
            lambda: runtime.every(
                settings.dues_scheduler_seconds,
                lambda: dues_scheduler.loop_once(
                    pool, app.state.orchestrator, app.state.dues_policy
                ),
            ),
        )

    def _open_pool(self) -> Awaitable[asyncpg.Pool]:
        return create_pool(
            self.settings.database_url.get_secret_value(),
            SCHEMA,
            min_size=self.settings.db_pool_min,
            max_size=self.settings.db_pool_max,
            service="gateway",
        )

    async def _connect_broker(self) -> None:
        await self.broker.start()
        await declare_topology(self.broker, self.settings.delivery_limit)

    async def close(self) -> None:
        self.stop.set()
        if self.relay is not None:
            await self.relay.close()
        if self.consumer is not None:
            await self.consumer.stop()
        await self.supervisor.stop()
        for client in self.clients.values():
            await client.stop()
        await self.broker.stop()
        if self.readiness.pool is not None:
            await runtime.close_pool(self.readiness.pool)
        log.info("gateway_stopped")


def create_app(settings: Settings) -> FastStreamAPI:
    broker = runtime.make_broker(settings)
    gateway = GatewayRuntime(settings, broker)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.started = False
        starting = asyncio.create_task(gateway.start(app))
        try:
            yield
        finally:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, runtime.Stopped):
                await starting
            await gateway.close()

    app = FastAPI(
        title="FluxPay Collect API",
        version="2026-06",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(refuse_bad_path_parameters)],
        # FastAPI's native telemetry would open a second server span per request, in a trace
        # of its own (ObservedRequests opens the request's trace), and look up its providers
        # on every request: off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    errors.install(app, settings.doc_base_url)
    app.include_router(health_router(gateway.readiness))
    app.include_router(metrics_router())

    # Plain ASGI middlewares, the last added outermost.
    app.add_middleware(
        UntilStarted,
        started=lambda: bool(app.state.started),
        always=HEALTH_PATHS,
        doc_base_url=settings.doc_base_url,
    )
    # Inside the correlation middleware below, so a refusal carries X-Request-Id too.
    app.add_middleware(EdgeGuard, limits=settings.limits(), doc_base_url=settings.doc_base_url)
    app.add_middleware(Correlation)
    # Outside all but the observation: a refused create costs no routing, parsing or
    # database read.
    app.add_middleware(
        CreateAdmission,
        limit=AdmissionLimit(
            settings.create_max_in_flight,
            settings.create_min_in_flight,
            settings.create_target_latency_seconds,
        ),
        retry_after_seconds=settings.overload_retry_after_seconds,
        doc_base_url=settings.doc_base_url,
    )
    # Outermost: the span and the count include every refusal the layers inside make.
    app.add_middleware(ObservedRequests)

    # Before collect's `/collect/payments/{reference_or_id}`, which would take `export.csv`.
    app.include_router(lists.router)

    app.include_router(collect.router)
    app.include_router(checkout.router, dependencies=[Depends(limit_public)])
    # Before account's `/events/{event_id}`, which would take `stream` for an id.
    app.include_router(event_stream.router)
    app.include_router(account.router)
    for router in (api_keys.router, audit.router, payment_links.router, dues.router, docs.router):
        app.include_router(router)
    app.include_router(payment_links.public)

    async def started_by_gateway_runtime(_: RabbitBroker) -> None:
        """The broker connects in `GatewayRuntime.start`, retried, not in the lifespan."""

    return FastStreamAPI(broker, application=app, connection_hook=started_by_gateway_runtime)


def payment_event_consumer(settings: Settings, pool: asyncpg.Pool) -> Consumers:
    """Its own consumers (aio-pika, like every worker's), not a subscriber of the app's
    broker: FastStreamAPI would wrap that in FastAPI's dependency injection."""
    consumer = runtime.make_consumers(settings)

    async def on_payment_event(event: Message, msg: Any) -> None:
        await payment_events.on_event(pool, event, msg)

    subscribe(
        consumer,
        GATEWAY_EVENTS,
        domain_event_adapter,
        on_payment_event,
        delivery_limit=settings.delivery_limit,
        retry_seconds=settings.handler_retry_seconds,
    )
    return consumer


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT; in-flight requests finish (graceful), then exit 0."""
    config = uvicorn.Config(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=15,
    )
    server = runtime.EmbeddedServer(config)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        server.should_exit = True
        event_stream.close_streams()  # they would hold the graceful shutdown to its timeout

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    await server.serve()
