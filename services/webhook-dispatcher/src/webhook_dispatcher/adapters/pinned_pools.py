"""Connection pools of pinned requests: one per (scheme, hostname, port, checked address).

A connection verified for one hostname (its TLS session, its `Host`) is never used for
another, even when both resolve to the same address; a name resolving elsewhere next time
gets a pool of its own, for the newly checked address.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpcore

PoolKey = tuple[str, str, int, str]  # scheme, hostname, port, pinned address
ClientFactory = Callable[[], httpcore.AsyncConnectionPool]


@dataclass
class _Pool:
    client: httpcore.AsyncConnectionPool
    in_use: int = 0
    idle_since: float = 0.0


class PinnedPools:
    """One connection pool per (scheme, hostname, port, checked address), so a connection
    verified for one hostname is never used for another. Pools idle longer than the
    keep-alive (their connections expired anyway) or beyond `max_pools` are closed."""

    def __init__(self, factory: ClientFactory, max_pools: int, idle_seconds: float) -> None:
        self._factory = factory
        self._max_pools = max_pools
        self._idle_seconds = idle_seconds
        self._pools: dict[PoolKey, _Pool] = {}
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._pools)

    @contextlib.asynccontextmanager
    async def client(self, key: PoolKey) -> AsyncIterator[httpcore.AsyncConnectionPool]:
        pool = self._pools.pop(key, None) or _Pool(self._factory())
        self._pools[key] = pool  # most recently used last
        pool.in_use += 1
        try:
            yield pool.client
        finally:
            pool.in_use -= 1
            pool.idle_since = time.monotonic()
            await self._sweep()

    async def _sweep(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep and len(self._pools) <= self._max_pools:
            return
        self._next_sweep = now + self._idle_seconds
        excess = len(self._pools) - self._max_pools
        for key, pool in list(self._pools.items()):  # least recently used first
            if pool.in_use:
                continue
            if excess > 0 or now - pool.idle_since >= self._idle_seconds:
                excess -= 1
                del self._pools[key]
                await pool.client.aclose()

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.client.aclose()
