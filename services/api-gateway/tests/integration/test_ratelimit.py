"""The rate limiter against real PostgreSQL: two limiters (two gateways) share one count;
when its table cannot be reached, what moves money is refused and the rest passes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from api_gateway.app import MIGRATIONS, SCHEMA
from api_gateway.errors import ApiError
from api_gateway.ratelimit import Limits, RateLimiter
from api_gateway.roles import RouteClass
from fluxpay_common.db import create_pool, migrate

LIMITS = Limits(window_seconds=86_400, per_class={c: 3 for c in RouteClass})


@pytest.fixture
async def pools(database_url: str) -> AsyncIterator[list[asyncpg.Pool]]:
    pools = [await create_pool(database_url, SCHEMA, min_size=1, max_size=2) for _ in range(2)]
    await migrate(pools[0], SCHEMA, MIGRATIONS)
    yield pools
    for pool in pools:
        await pool.close()


async def test_two_limiters_share_one_count(pools: list[asyncpg.Pool]) -> None:
    first, second = (RateLimiter(pool, LIMITS) for pool in pools)
    for limiter in (first, second, first):
        await limiter.check("key:shared:create", RouteClass.CREATE, "POST")
    with pytest.raises(ApiError) as refused:
        await second.check("key:shared:create", RouteClass.CREATE, "POST")
    assert refused.value.status == 429 and refused.value.code == "rate_limit_exceeded"
    assert int((refused.value.headers or {})["Retry-After"]) >= 1
    await first.check("key:shared:read", RouteClass.READ, "GET")


async def test_an_unreachable_limiter_fails_closed_only_for_what_moves_money(
    database_url: str,
) -> None:
    # A schema without the counter table: every count is a database error.
    pool = await create_pool(database_url, "gateway_without_limits", min_size=1, max_size=1)
    try:
        limiter = RateLimiter(pool, LIMITS)
        for _ in range(5):
            await limiter.check("key:down:read", RouteClass.READ, "GET")
            await limiter.check("key:down:management", RouteClass.MANAGEMENT, "DELETE")
            await limiter.check("ip:down:public", RouteClass.PUBLIC, "GET")
        for route_class in (RouteClass.CREATE, RouteClass.REFUND, RouteClass.PUBLIC):
            with pytest.raises(ApiError) as refused:
                await limiter.check("key:down:write", route_class, "POST")
            assert refused.value.status == 503
            assert refused.value.code == "rate_limiter_unavailable"
    finally:
        await pool.close()
