"""Successful attempts that finish together are recorded in one statement.

No wait is added to gather them: the first success writes at once; those finishing while
that write is in flight queue up and go together in the next one. A new delivery's first
attempts start together (a batch of events leased in one statement), so they tend to
finish together too. Failures keep their own statement (their next due time, the endpoint's
health and its disablement are decided one by one).
"""

from __future__ import annotations

import asyncio

import asyncpg

from webhook_dispatcher.adapters import delivery_store as store


class SuccessLog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._queue: list[tuple[store.Success, asyncio.Future[bool]]] = []
        self._writing = False

    async def record(self, success: store.Success) -> bool:
        """Recorded (True) or the lease was lost meanwhile (False; the attempt is logged);
        raises what the write raised, for the caller to retry."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((success, done))
        if not self._writing:
            self._writing = True
            try:
                await self._write_queued()
            finally:
                self._writing = False
        return await done

    async def _write_queued(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                owned = await store.record_successes(self._pool, [s for s, _ in batch])
            except BaseException as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc if isinstance(exc, Exception) else _Stopped())
                if not isinstance(exc, Exception):
                    self._fail_queued()
                    raise
                continue
            for success, done in batch:
                if not done.done():
                    done.set_result(success.job.id in owned)

    def _fail_queued(self) -> None:
        # The writer was cancelled (shutdown): those waiting on it must not wait forever.
        queued, self._queue = self._queue, []
        for _, done in queued:
            if not done.done():
                done.set_exception(_Stopped())


class _Stopped(Exception):
    """The write carrying this attempt was cancelled (the dispatcher is stopping)."""
