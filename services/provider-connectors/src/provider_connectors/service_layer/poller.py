"""The durable poller: the only way outcomes appear when a PSP sends no callback.

Its state is the `next_poll_at` column, so a restarted process picks up where the last
one stopped. Due rows are claimed with a lease (SKIP LOCKED: replicas share the work);
an attempt whose check fails keeps the lease as its retry delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass

from fluxpay_common.logging import bound_context, get_logger
from fluxpay_common.runtime import every
from fluxpay_common.tracing import continued
from provider_connectors.adapters import repository as repo
from provider_connectors.connectors.base import (
    AttemptNotFound,
    ConnectorError,
    ProviderMisconfigured,
)
from provider_connectors.domain.model import Attempt, RefundAttempt
from provider_connectors.service_layer.engine import Engine

log = get_logger(__name__)


@dataclass
class Poller:
    engine: Engine
    interval_seconds: float = 0.2
    batch: int = 50
    concurrency: int = 10

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)

    async def run(self) -> None:
        await every(self.interval_seconds, self.poll_once)

    async def poll_once(self) -> int:
        """Check every due attempt and refund once; returns how many were due."""
        engine = self.engine
        now = engine.clock()
        lease_until = now + engine.lease
        async with engine.pool.acquire() as conn:
            attempts = await repo.claim_due_attempts(
                conn, engine.provider, now, lease_until, self.batch
            )
            refunds = await repo.claim_due_refunds(
                conn, engine.provider, now, lease_until, self.batch
            )
        await asyncio.gather(
            *(self._guarded(self._poll_attempt(a, version)) for a, version in attempts),
            *(self._guarded(self._poll_refund(r)) for r in refunds),
        )
        return len(attempts) + len(refunds)

    async def _guarded(self, work: Awaitable[None]) -> None:
        async with self._slots:
            try:
                await work
            except ConnectorError as exc:
                log.warning("poll_failed_will_retry", error=str(exc))
            except Exception:
                log.exception("poll_crashed_will_retry")

    async def _poll_attempt(self, attempt: Attempt, version: int) -> None:
        with (
            bound_context(payment_id=attempt.payment_id),
            continued("poll payment", attempt.data.get("traceparent")),
        ):
            # The lease returned the attempt as it stands: no need to read it again.
            await self.engine.refresh(
                attempt.payment_id, self.engine.current_status, snapshot=(attempt, version)
            )

    async def _poll_refund(self, refund: RefundAttempt) -> None:
        with (
            bound_context(payment_id=refund.payment_id, refund_id=refund.refund_id),
            continued("poll refund", refund.data.get("traceparent")),
        ):
            async with self.engine.pool.acquire() as conn:
                found = await repo.get_attempt(conn, refund.payment_id)
            assert found is not None
            attempt = found[0]
            try:
                result = await self.engine.connector.fetch_refund_status(attempt, refund)
            except ProviderMisconfigured as exc:
                await self.engine.refund_misconfigured(refund, exc)
                return
            except AttemptNotFound:
                # Never reached the PSP: send it again under the same refund id (idempotent).
                await self.engine.start_refund(attempt, refund)
                return
            await self.engine.apply_refund(refund, result)
