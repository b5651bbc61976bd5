"""Rate limits shared by every gateway instance: fixed-window counters in PostgreSQL.

A bucket is an API key and route class (`key:<id>:create`) or a client IP on public pages
(`ip:<address>:public`). Each request bumps its bucket's row for the current window in one
`INSERT … ON CONFLICT … RETURNING` statement, so two gateways see one count. The window is
computed by the database's clock, the same for every instance.

When the limiter cannot answer (database error or timeout), what moves money (payment
creation and confirmation, refunds, cancels, a payer's choice on the checkout page) is
refused with 503 (fail closed): an unmetered burst of those could cost money. Reads and key
or webhook management go through (fail open): they cost little, and revoking a leaked key
must not wait for the limiter.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from api_gateway.config import Settings
from api_gateway.errors import ApiError
from api_gateway.roles import RouteClass, fails_open
from fluxpay_common.consumer import TRANSIENT_ERRORS
from fluxpay_common.logging import get_logger

log = get_logger(__name__)

HIT = """
INSERT INTO rate_limit_counter AS c (bucket, window_start, hits)
VALUES ($1, to_timestamp(floor(extract(epoch FROM clock_timestamp()) / $2) * $2), 1)
ON CONFLICT (bucket, window_start) DO UPDATE SET hits = c.hits + 1
RETURNING c.hits,
    greatest(1, ceil(extract(epoch FROM c.window_start) + $2
                     - extract(epoch FROM clock_timestamp())))::int AS retry_after
"""
LIMITER_ERRORS = (asyncpg.PostgresError, TimeoutError, asyncio.TimeoutError, *TRANSIENT_ERRORS)


@dataclass(frozen=True)
class Limits:
    """Requests allowed per window, per bucket; 0 means unlimited."""

    window_seconds: int
    per_class: dict[RouteClass, int]
    timeout_seconds: float = 1.0


class RateLimiter:
    def __init__(self, pool: asyncpg.Pool, limits: Limits) -> None:
        self._pool = pool
        self._limits = limits

    async def check(self, bucket: str, route_class: RouteClass, method: str) -> None:
        """Count one request; 429 over the limit; 503 if uncountable and it moves money."""
        limit = self._limits.per_class.get(route_class, 0)
        if limit <= 0:
            return
        try:
            row = await self._pool.fetchrow(
                HIT, bucket, self._limits.window_seconds, timeout=self._limits.timeout_seconds
            )
        except LIMITER_ERRORS as exc:
            self._on_outage(route_class, method, exc)
            return
        assert row is not None
        if row["hits"] > limit:
            raise too_many(route_class, limit, self._limits.window_seconds, row["retry_after"])

    def _on_outage(self, route_class: RouteClass, method: str, exc: BaseException) -> None:
        log.warning("rate_limiter_unavailable", route_class=route_class, error=repr(exc))
        if fails_open(route_class, method):
            return
        raise ApiError(
            503,
            "rate_limiter_unavailable",
            "FluxPay cannot check this request's rate limit right now; retry shortly"
            " (with the same Idempotency-Key).",
            headers={"Retry-After": "1"},
        )

    async def purge(self) -> None:
        """Forget windows that ended (any instance may run it; deletes are idempotent)."""
        await self._pool.execute(
            "DELETE FROM rate_limit_counter WHERE window_start < now() - make_interval(secs => $1)",
            float(2 * self._limits.window_seconds),
        )


def too_many(route_class: RouteClass, limit: int, window: int, retry_after: int) -> ApiError:
    return ApiError(
        429,
        "rate_limit_exceeded",
        f"More than {limit} {route_class} requests in {window} s; retry in {retry_after} s.",
        headers={"Retry-After": str(retry_after)},
    )


def limits_from(settings: Settings) -> Limits:
    return Limits(
        window_seconds=settings.rate_limit_window_seconds,
        per_class={
            RouteClass.READ: settings.rate_limit_read,
            RouteClass.CREATE: settings.rate_limit_create,
            RouteClass.REFUND: settings.rate_limit_refund,
            RouteClass.MANAGEMENT: settings.rate_limit_management,
            RouteClass.PUBLIC: settings.rate_limit_public_per_ip,
        },
        timeout_seconds=settings.rate_limit_timeout_seconds,
    )
