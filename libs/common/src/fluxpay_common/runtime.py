"""Process plumbing shared by the services: broker factory, supervised loops, start-up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from faststream.rabbit import RabbitBroker
from faststream.rabbit.schemas import Channel

from fluxpay_common.logging import configure_logging, get_logger
from fluxpay_common.settings import ServiceSettings
from fluxpay_common.tracing import configure_tracing

log = get_logger(__name__)


def make_broker(settings: ServiceSettings, **kwargs: Any) -> RabbitBroker:
    """A broker with publisher confirms, bounded prefetch and graceful stop.

    `on_return_raises`: a mandatory message no queue accepts raises instead of vanishing.
    """
    return RabbitBroker(
        settings.rabbitmq_url.get_secret_value(),
        default_channel=Channel(
            prefetch_count=settings.prefetch, publisher_confirms=True, on_return_raises=True
        ),
        graceful_timeout=15,
        logger=None,
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
