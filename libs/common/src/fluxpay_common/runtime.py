"""Process plumbing shared by the services: broker factory, supervised loops, start-up."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import uvicorn
from faststream.rabbit import RabbitBroker
from faststream.rabbit.schemas import Channel

from fluxpay_common.db import create_pool, migrate
from fluxpay_common.logging import configure_logging, get_logger
from fluxpay_common.outbox import OutboxRelay
from fluxpay_common.settings import ServiceSettings
from fluxpay_common.topology import declare_topology
from fluxpay_common.tracing import configure_tracing

log = get_logger(__name__)


def make_broker(settings: ServiceSettings, **kwargs: Any) -> RabbitBroker:
    """A broker with publisher confirms, bounded prefetch and graceful stop.

    `on_return_raises`: a mandatory message no queue accepts raises instead of vanishing.
    `apply_types=False`: handlers receive the message itself (see `consumer.subscribe`), without
    FastDepends resolving arguments, which ran a thread-pool hop for every message.
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
    """What a worker's wiring receives: its settings, pool, broker and background loops."""

    service: str
    settings: ServiceSettings
    pool: asyncpg.Pool
    broker: RabbitBroker
    supervisor: Supervisor
    relay: OutboxRelay


Hook = Callable[[WorkerContext], Awaitable[None]]


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside a worker: the worker, not uvicorn, owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


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

    Start: pool, migrations, subscribers (`register`), broker, topology, outbox relay,
    `started` (background loops), optional HTTP server. Stop: HTTP, loops, broker (in-flight
    handlers finish, unacked messages return to their queue), pool.
    """
    bootstrap_process(service, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await create_pool(
        settings.database_url.get_secret_value(),
        schema,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        service=service,
    )
    await migrate(pool, schema, migrations)
    broker = make_broker(settings)
    supervisor = Supervisor()
    ctx = WorkerContext(service, settings, pool, broker, supervisor, OutboxRelay(pool, broker))
    await register(ctx)
    await broker.connect()
    await declare_topology(broker, settings.delivery_limit)
    await broker.start()
    supervisor.start("outbox-relay", ctx.relay.run)
    if started is not None:
        await started(ctx)
    server: EmbeddedServer | None = None
    server_task: asyncio.Task[None] | None = None
    if http_app is not None and http_port is not None:
        config = uvicorn.Config(
            http_app(ctx), host=http_host, port=http_port, log_config=None, lifespan="off"
        )
        server = EmbeddedServer(config)
        server_task = asyncio.create_task(server.serve())
    log.info("service_started", schema=schema, http_port=http_port)
    await stop.wait()
    log.info("service_stopping")
    if server is not None and server_task is not None:
        server.should_exit = True
        await server_task
    ctx.relay.stop()
    await supervisor.stop()
    await broker.stop()
    if stopped is not None:
        await stopped(ctx)
    try:
        # Bounded: an orchestrator of processes (Kubernetes, honcho) waits only so long.
        await asyncio.wait_for(pool.close(), 5)
    except TimeoutError:
        log.warning("pool_close_timed_out")
        pool.terminate()
    log.info("service_stopped")
