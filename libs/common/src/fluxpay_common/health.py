"""Liveness and readiness of a process: `GET /healthz` and `GET /readyz`.

- `/healthz` answers 200 while the event loop runs: a failing one means restart the process.
- `/readyz` answers 200 only while a `SELECT 1` on the process's pool answers in time, its
  broker connection is up and, for a worker, every consumer is attached to its queue; else
  503. Each check is named in the body so an operator reads why. A process still waiting
  for PostgreSQL or RabbitMQ at start is alive and not ready, never crashed.

Every process serves them on one small HTTP port (`FLUXPAY_HEALTH_PORT`), or on the HTTP
server it already has (the gateway's port, a connector's callback port); later routes such
as `/metrics` join the same app (`health_app` returns a FastAPI app to add them to).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from faststream.rabbit import RabbitBroker
from starlette.routing import Match

from fluxpay_common.consumers import Consumers
from fluxpay_common.metrics import metrics_router

Check = Callable[[], Awaitable[bool]]


@dataclass
class Readiness:
    """What a process depends on; filled in as start-up reaches each piece."""

    service: str
    timeout: float = 2.0
    pool: asyncpg.Pool | None = None
    broker: RabbitBroker | None = None
    consumers: Consumers | None = None
    expects_consumers: bool = False
    extra: dict[str, Check] = field(default_factory=dict)

    async def checks(self) -> dict[str, bool]:
        result = {
            "database": await self._database_answers(),
            "broker": await self._broker_connected(),
        }
        if self.expects_consumers:
            result["consumers"] = await self._consumers_attached()
        for name, check in self.extra.items():
            result[name] = await _bounded(check(), self.timeout)
        return result

    async def _database_answers(self) -> bool:
        pool = self.pool
        if pool is None:
            return False

        async def select_one() -> bool:
            async with pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT 1") == 1)

        return await _bounded(select_one(), self.timeout)

    async def _broker_connected(self) -> bool:
        connection = getattr(self.broker, "_connection", None)
        return connection is not None and connection.connected.is_set()

    async def _consumers_attached(self) -> bool:
        if self.consumers is None:
            return False
        return await _bounded(self.consumers.attached(), self.timeout)


async def _bounded(check: Awaitable[bool], timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            return await check
    except Exception:
        # Any failure (refused, reset, timed out, channel closed) is the answer: not ready.
        return False


def health_router(readiness: Readiness) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "alive", "service": readiness.service}

    @router.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks = await readiness.checks()
        ready = all(checks.values())
        body = {"status": "ready" if ready else "not_ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    return router


def health_app(readiness: Readiness) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(health_router(readiness))
    app.include_router(metrics_router())
    return app


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class HealthFirst:
    """ASGI app serving the health routes at once and the process's own app (a connector's
    PSP callbacks) once start-up has built it; until then other paths answer 503, which a
    PSP retries."""

    def __init__(self, health: FastAPI) -> None:
        self.health = health
        self.inner: Any = None

    def _is_health_route(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] is not Match.NONE for route in self.health.router.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if self._is_health_route(scope):
            await self.health(scope, receive, send)
        elif self.inner is not None:
            await self.inner(scope, receive, send)
        else:
            await JSONResponse({"error": "starting"}, status_code=503)(scope, receive, send)
