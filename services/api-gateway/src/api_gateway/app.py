"""The merchant HTTP API (FluxPay Collect API, /api/v1) on FastAPI, with FastStream for
the broker (outbox relay publishing, topology) through `faststream-fastapi`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from faststream.rabbit import RabbitBroker
from faststream_fastapi import FastStreamAPI
from starlette.responses import Response

from api_gateway import errors
from api_gateway.admission import AdmissionLimit, CreateAdmission
from api_gateway.config import Settings
from api_gateway.idempotency import IdempotencyStore
from api_gateway.routes import account, checkout, collect, event_stream
from api_gateway.rpc import Orchestrator, QueryService
from fluxpay_common import runtime
from fluxpay_common.db import create_pool, migrate
from fluxpay_common.logging import bound_context, get_logger
from fluxpay_common.outbox import OutboxRelay
from fluxpay_common.rpc import RpcClient
from fluxpay_common.topology import (
    COMMANDS,
    LEDGER_QUERIES_KEY,
    ORCHESTRATOR_COMMANDS_KEY,
    WEBHOOK_COMMANDS_KEY,
    declare_topology,
)

log = get_logger(__name__)
SCHEMA = "gateway"
MIGRATIONS = resources.files("api_gateway") / "migrations"


def create_app(settings: Settings) -> FastStreamAPI:
    broker = runtime.make_broker(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(
            settings.database_url.get_secret_value(),
            SCHEMA,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            service="gateway",
        )
        await migrate(pool, SCHEMA, MIGRATIONS)
        url = settings.rabbitmq_url.get_secret_value()
        client = RpcClient(url, COMMANDS.name, ORCHESTRATOR_COMMANDS_KEY)
        ledger = RpcClient(url, COMMANDS.name, LEDGER_QUERIES_KEY)
        webhooks = RpcClient(url, COMMANDS.name, WEBHOOK_COMMANDS_KEY)
        for c in (client, ledger, webhooks):
            await c.start()
        relay = OutboxRelay(pool, broker)
        supervisor = runtime.Supervisor()
        idempotency = IdempotencyStore(
            pool, settings.idempotency_ttl_hours, settings.idempotency_lock_seconds
        )
        supervisor.start("outbox-relay", relay.run)
        supervisor.start("idempotency-purge", lambda: runtime.every(600, idempotency.purge_expired))
        app.state.settings = settings
        app.state.pool = pool
        app.state.orchestrator = Orchestrator(client, settings.rpc_timeout)
        app.state.idempotency = idempotency
        app.state.ledger = QueryService(ledger, settings.rpc_timeout)
        app.state.webhooks = QueryService(webhooks, settings.rpc_timeout)
        log.info("gateway_started", host=settings.gateway_host, port=settings.gateway_port)
        try:
            yield
        finally:
            relay.stop()
            await supervisor.stop()
            for c in (client, ledger, webhooks):
                await c.stop()
            await pool.close()
            log.info("gateway_stopped")

    app = FastAPI(
        title="FluxPay Collect API",
        version="2026-06",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app, settings.doc_base_url)

    @app.middleware("http")
    async def correlation(request: Request, call_next: Any) -> Response:
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        request.state.correlation_id = request_id[:100]
        with bound_context(correlation_id=request.state.correlation_id):
            response: Response = await call_next(request)
        response.headers["X-Request-Id"] = request.state.correlation_id
        return response

    # Added last, so outermost: a refused create costs no routing, parsing or database read.
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
    app.include_router(collect.router)
    app.include_router(checkout.router)
    # Before account's `/events/{event_id}`, which would take `stream` for an id.
    app.include_router(event_stream.router)
    app.include_router(account.router)

    async def connect(b: RabbitBroker) -> None:
        await b.start()
        await declare_topology(b, settings.delivery_limit)

    return FastStreamAPI(broker, application=app, connection_hook=connect)


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
