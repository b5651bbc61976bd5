"""Process plumbing shared by the services: broker factory, supervised loops, start-up."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import uvicorn
from faststream.rabbit import RabbitBroker
from faststream.rabbit.schemas import Channel

from fluxpay_common.consumers import Consumers
from fluxpay_common.db import create_pool, migrate
from fluxpay_common.health import HealthFirst, Readiness, health_app
from fluxpay_common.logging import configure_logging, get_logger
from fluxpay_common.outbox import OutboxRelay
from fluxpay_common.settings import ServiceSettings
from fluxpay_common.topology import declare_topology
from fluxpay_common.tracing import configure_tracing

log = get_logger(__name__)
T = TypeVar("T")


def make_broker(settings: ServiceSettings, **kwargs: Any) -> RabbitBroker:
    """A broker with publisher confirms, bounded prefetch and graceful stop: the workers
    publish (outbox relay) and declare the topology with it; they consume with `Consumers`.

    `on_return_raises`: a mandatory message no queue accepts raises instead of vanishing.
    `apply_types=False`: no FastDepends resolving arguments, which ran a thread-pool hop for
    every message.
    """
    return RabbitBroker(
        settings.rabbitmq_url.get_secret_value(),
        default_channel=Channel(
            prefetch_count=settings.prefetch, publisher_confirms=True, on_return_raises=True
        ),
        # In-flight handlers get this long to finish on SIGTERM; the rest return to the queue.
        graceful_timeout=10,
        logger=None,
        apply_types=False,
        **kwargs,
    )


SERVICE_EPILOG = (
    "Configured by environment variables (DATABASE_URL, RABBITMQ_URL, FLUXPAY_*; README,"
    " 'Configuration'). Health: GET /healthz and /readyz on FLUXPAY_HEALTH_PORT."
)


def parse_service_args(prog: str, doc: str | None, argv: Sequence[str] | None = None) -> None:
    """`--help` for a service that takes no arguments (runs until SIGTERM)."""
    description = (doc or "").strip().split("\n")[0]
    argparse.ArgumentParser(prog=prog, description=description, epilog=SERVICE_EPILOG).parse_args(
        argv
    )


def make_consumers(settings: ServiceSettings) -> Consumers:
    """The process's queue consumers (`consumer.subscribe` registers on them)."""
    # In-flight handlers get this long to finish on SIGTERM; the rest return to the queue.
    return Consumers(settings.rabbitmq_url.get_secret_value(), settings.prefetch, 10)


def bootstrap_process(service: str, settings: ServiceSettings) -> None:
    configure_logging(service, settings.log_level)
    configure_tracing(service, settings.otel_exporter)


class Supervisor:
    """Background loops (outbox relay, pollers) restarted with backoff if they crash."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        self._tasks.append(asyncio.create_task(self._keep_running(name, loop), name=name))

    async def _keep_running(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        backoff = 0.5
        while True:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("background_loop_crashed", loop=name, error=repr(exc), exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


async def every(seconds: float, tick: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """Call `tick` forever, `seconds` apart (a supervised loop's body)."""
    while True:
        await tick()
        await asyncio.sleep(seconds)


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a service's main coroutine on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(main())
        return
    uvloop.run(main())


# ---------------------------------------------------------------- one lifecycle for every worker


@dataclass
class WorkerContext:
    """What a worker's wiring receives: its settings, pool, broker (publishing), queue
    consumers (`consumer.subscribe(ctx.consumers, ...)`) and background loops."""

    service: str
    settings: ServiceSettings
    pool: asyncpg.Pool
    broker: RabbitBroker
    supervisor: Supervisor
    relay: OutboxRelay
    consumers: Consumers = field(init=False)

    def __post_init__(self) -> None:
        self.consumers = make_consumers(self.settings)


Hook = Callable[[WorkerContext], Awaitable[None]]


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside a worker: the worker, not uvicorn, owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Stopped(Exception):
    """SIGTERM arrived while start-up was still waiting for a dependency."""


async def keep_trying(what: str, operation: Callable[[], Awaitable[T]], stop: asyncio.Event) -> T:
    """Run a start-up step until it succeeds, with capped backoff; raise `Stopped` on SIGTERM.

    An unreachable database or broker at start leaves the process alive and not ready
    (`/readyz` says which), instead of exiting into a crash loop; it goes on when they answer.
    """
    backoff = 0.5
    while not stop.is_set():
        try:
            return await operation()
        except Exception as exc:
            log.warning("startup_waiting", dependency=what, error=repr(exc), retry_in=backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, 10.0)
    raise Stopped(what)


def stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


class HttpServer:
    """One embedded uvicorn server (health, PSP callbacks), stopped by the worker."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="off")
        self._server = EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve())

    async def stop(self) -> None:
        self._server.should_exit = True
        await self._task


async def serve_worker(
    service: str,
    settings: ServiceSettings,
    *,
    schema: str,
    migrations: Any,
    register: Hook,
    started: Hook | None = None,
    stopped: Hook | None = None,
    http_app: Callable[[WorkerContext], Any] | None = None,
    http_host: str = "127.0.0.1",
    http_port: int | None = None,
) -> None:
    """Run a worker until SIGTERM/SIGINT, then stop in order and exit cleanly.

    Start: HTTP server with the health routes (on the worker's own HTTP port when it has one,
    else on `FLUXPAY_HEALTH_PORT` when set), then pool, migrations, subscribers (`register`),
    broker, topology, consumers, outbox relay, `started` (background loops), and the
    worker's own HTTP routes; each step retried until its dependency answers. Stop: HTTP,
    consumers (in-flight handlers finish, unacked messages return to their queue), loops,
    broker, pool.
    """
    bootstrap_process(service, settings)
    worker = _Worker(service, settings, schema, migrations, register, stop_event())
    front = HealthFirst(health_app(worker.readiness))
    own_http = http_app is not None and http_port is not None
    host = http_host if own_http else settings.health_host
    port = http_port if own_http else settings.health_port
    server = HttpServer(front, host, port) if port is not None else None
    try:
        ctx = await worker.start(started)
        if http_app is not None and own_http:
            front.inner = http_app(ctx)
        log.info("service_started", schema=schema, http_port=port)
        await worker.stop.wait()
    except Stopped as exc:
        log.info("service_stopped_while_starting", waiting_for=str(exc))
    log.info("service_stopping")
    if server is not None:
        await server.stop()
    await worker.close(stopped)
    log.info("service_stopped")


@dataclass
class _Worker:
    """A worker's start-up and shutdown; it records what exists so a stop mid-way closes
    just that."""

    service: str
    settings: ServiceSettings
    schema: str
    migrations: Any
    register: Hook
    stop: asyncio.Event
    readiness: Readiness = field(init=False)
    ctx: WorkerContext | None = None

    def __post_init__(self) -> None:
        self.readiness = Readiness(self.service, expects_consumers=True)

    async def start(self, started: Hook | None) -> WorkerContext:
        settings, stop = self.settings, self.stop
        pool = await keep_trying("database", self._open_pool, stop)
        self.readiness.pool = pool
        await keep_trying("migrations", lambda: migrate(pool, self.schema, self.migrations), stop)
        broker = make_broker(settings)
        ctx = WorkerContext(
            self.service, settings, pool, broker, Supervisor(), OutboxRelay(pool, broker)
        )
        await self.register(ctx)
        self.readiness.broker = broker
        self.readiness.consumers = ctx.consumers
        await keep_trying("broker", broker.connect, stop)
        limit = settings.delivery_limit
        await keep_trying("topology", lambda: declare_topology(broker, limit), stop)
        await keep_trying("publisher", broker.start, stop)
        self.ctx = ctx
        await keep_trying("consumers", ctx.consumers.start, stop)
        ctx.supervisor.start("outbox-relay", ctx.relay.run)
        if started is not None:
            await started(ctx)
        return ctx

    def _open_pool(self) -> Awaitable[asyncpg.Pool]:
        settings = self.settings
        return create_pool(
            settings.database_url.get_secret_value(),
            self.schema,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            service=self.service,
        )

    async def close(self, stopped: Hook | None) -> None:
        if self.ctx is not None:
            # First: the handlers in hand finish while the relay still publishes their rows.
            await self.ctx.consumers.stop()
            # Then the rows their commits handed over are published and marked.
            await self.ctx.relay.close()
            await self.ctx.supervisor.stop()
        if self.readiness.broker is not None:
            await self.readiness.broker.stop()
        if self.ctx is not None and stopped is not None:
            await stopped(self.ctx)
        if self.readiness.pool is not None:
            await close_pool(self.readiness.pool)


async def close_pool(pool: asyncpg.Pool) -> None:
    try:
        # Bounded: an orchestrator of processes (Kubernetes, honcho) waits only so long.
        await asyncio.wait_for(pool.close(), 5)
    except TimeoutError:
        log.warning("pool_close_timed_out")
        pool.terminate()
