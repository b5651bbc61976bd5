"""The one place where a connector process is wired: provider, engine, poller, HTTP."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from fluxpay_common.consumer import Delivery, subscribe
from fluxpay_common.messages import (
    ConnectorInspect,
    ConnectorMessage,
    ListProviderReviews,
    ResolveProviderReview,
    connector_message_adapter,
)
from fluxpay_common.runtime import WorkerContext, every
from fluxpay_common.topology import connector_route
from provider_connectors.config import Settings
from provider_connectors.connectors.base import Connector
from provider_connectors.connectors.instrumented import InstrumentedConnector
from provider_connectors.connectors.irembopay.connector import IremboPayConnector
from provider_connectors.connectors.mtn_momo.connector import MtnMomoConnector
from provider_connectors.connectors.novasend.connector import NovasendConnector
from provider_connectors.connectors.sandbox.connector import SandboxConnector
from provider_connectors.connectors.stripe.connector import StripeConnector
from provider_connectors.service_layer import inspection, review
from provider_connectors.service_layer.engine import Engine
from provider_connectors.service_layer.poller import Poller
from provider_connectors.service_layer.review_gauge import SAMPLE_SECONDS, sample_review_queue

PROVIDERS = ("sandbox", "novasend", "mtn_momo", "irembopay", "stripe")


def build_connector(settings: Settings) -> Connector:
    match settings.provider:
        case "sandbox":
            return SandboxConnector(settings.sandbox_delay_seconds)
        case "novasend":
            return NovasendConnector(settings)
        case "mtn_momo":
            return MtnMomoConnector(settings)
        case "irembopay":
            return IremboPayConnector(settings)
        case "stripe":
            return StripeConnector(settings)
        case other:
            raise ValueError(f"unknown provider {other!r}; known: {', '.join(PROVIDERS)}")


@dataclass
class ConnectorWorker:
    """The hooks `serve_worker` calls, sharing one engine."""

    settings: Settings
    connector: Connector = field(init=False)
    engine: Engine | None = None

    def __post_init__(self) -> None:
        # Measured and traced (fluxpay_psp_call_seconds, a span per PSP call).
        self.connector = InstrumentedConnector(build_connector(self.settings))

    async def register(self, ctx: WorkerContext) -> None:
        self.engine = Engine(
            ctx.pool,
            self.connector,
            self.settings.provider,
            lease=timedelta(seconds=self.settings.connector_poll_lease_seconds),
            relay=ctx.relay,
        )
        subscribe(
            ctx.consumers,
            connector_route(self.settings.provider),
            connector_message_adapter,
            self.on_message,
            delivery_limit=ctx.settings.delivery_limit,
            retry_seconds=ctx.settings.handler_retry_seconds,
        )

    async def on_message(self, message: ConnectorMessage, _: Delivery) -> BaseModel | None:
        """The orchestrator's commands go to the engine; an operator's review and inspect
        requests (`fluxpay-admin`) are answered from this provider's own tables."""
        assert self.engine is not None
        match message:
            case ListProviderReviews() | ResolveProviderReview():
                return await review.answer(self.engine.pool, self.settings.provider, message)
            case ConnectorInspect():
                return await inspection.inspect(self.engine.pool, self.settings.provider, message)
            case _:
                return await self.engine.handle(message)

    async def started(self, ctx: WorkerContext) -> None:
        assert self.engine is not None
        poller = Poller(
            self.engine,
            interval_seconds=self.settings.connector_poll_interval_seconds,
            batch=self.settings.connector_poll_batch,
        )
        ctx.supervisor.start("poller", poller.run)
        provider = self.settings.provider
        ctx.supervisor.start(
            "review-queue-gauge",
            lambda: every(SAMPLE_SECONDS, lambda: sample_review_queue(ctx.pool, provider)),
        )
        ctx.supervisor.start("connector-lifetime", self._close_on_stop)

    async def _close_on_stop(self) -> None:
        """Parks until the supervisor stops, then releases the connector's HTTP client."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.connector.aclose()

    def http_app(self, ctx: WorkerContext) -> Any:
        from provider_connectors.entrypoints.http import create_app

        assert self.engine is not None
        return create_app(self.engine)
