"""Round trips to PostgreSQL counted: a pool whose connections record every statement they
send (BEGIN and COMMIT included), for tests that pin how many a flow costs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg


class CountingPool:
    """Stands for an `asyncpg.Pool` where code only `acquire()`s from it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._sent: list[str] = []

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._pool.acquire() as conn:
            conn.add_query_logger(self._record)
            try:
                yield conn
            finally:
                conn.remove_query_logger(self._record)

    def _record(self, logged: Any) -> None:
        self._sent.append(" ".join(logged.query.rstrip(";").split()))

    async def taken(self) -> list[str]:
        """The statements sent since the last call, whitespace collapsed."""
        await asyncio.sleep(0)  # asyncpg calls query loggers soon after a query, not in it
        taken, self._sent = self._sent, []
        return taken


def shapes(statements: list[str], words: int = 3) -> list[str]:
    """Each statement's first words: enough to tell them apart in an assertion."""
    return [" ".join(s.split()[:words]) for s in statements]
