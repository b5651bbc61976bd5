"""The delivery loop: claim due deliveries, send them concurrently, record each attempt.

Every state lives in the database (due time, attempt count, lease), so a restart resumes
the schedule where it stopped. A new delivery's first attempt usually skips the claim: the
event consumer inserts it already leased within this process's free slots and the
merchant's limit, and hands it over here (`slots`, `start`). The loop claims the rest:
retries, deliveries held back by a limit (NOTIFY when they are created), leases whose
process died; it polls for due retries. In-flight sends are bounded per process and per
merchant, so one slow merchant never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from opentelemetry.trace import SpanKind

from fluxpay_common.consumer import TRANSIENT_ERRORS, retry_transient
from fluxpay_common.crypto import SecretBox
from fluxpay_common.ids import utcnow
from fluxpay_common.logging import bound_context, get_logger
from fluxpay_common.metrics import WEBHOOK_ATTEMPTS, WEBHOOK_DELIVERY_LAG
from fluxpay_common.signing import SIGNATURE_HEADER, signature_header
from fluxpay_common.ssrf import without_credentials
from fluxpay_common.tracing import continued
from webhook_dispatcher.adapters import delivery_store as store
from webhook_dispatcher.adapters.http_sender import WebhookSender
from webhook_dispatcher.adapters.repository import NOTIFY_CHANNEL
from webhook_dispatcher.domain.delivery import (
    AttemptOutcome,
    Decision,
    Skip,
    Target,
    Wait,
    decide,
    resolve_target,
    signing_secrets,
)
from webhook_dispatcher.domain.schedule import Schedule
from webhook_dispatcher.service_layer.success_log import SuccessLog

log = get_logger(__name__)
EVENT_ID_HEADER = "X-FluxPay-Event-Id"
# A delivery waiting for its merchant's endpoint record looks again this often (the
# record's arrival also wakes it at once).
ENDPOINT_RECHECK = timedelta(seconds=5)
RECORD_RETRY_SECONDS = 30.0
OPENED_SECRETS = 1024


@dataclass(frozen=True)
class DispatchPolicy:
    schedule: Schedule
    endpoint_concurrency: int
    max_in_flight: int
    poll_seconds: float
    lease_seconds: float
    disable_after: timedelta
    endpoint_wait: timedelta


class Dispatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        sender: WebhookSender,
        box: SecretBox,
        policy: DispatchPolicy,
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self._pool = pool
        self._sender = sender
        # Opened once per sealed secret, not per POST (a rotation seals a new token; the
        # key is in this process anyway). A token that does not open is not remembered.
        self._open_secret = functools.lru_cache(maxsize=OPENED_SECRETS)(box.open)
        self._policy = policy
        self._clock = clock
        self._rng = rng
        self._successes = SuccessLog(pool)
        self._wake = asyncio.Event()
        # Each send in flight, and whether it came from the claim loop.
        self._in_flight: dict[asyncio.Task[None], tuple[store.ClaimedDelivery, bool]] = {}
        self._running = False
        # Slots held by inserts that may lease deliveries for a first attempt here.
        self._reserved = 0
        # Merchants whose new deliveries were held back by a limit: one of their sends
        # finishing frees a slot for them, so the loop claims then.
        self._held_back: set[uuid.UUID] = set()
        self._last_claim_full = False

    async def run(self) -> None:
        """Supervised loop body; on cancellation unfinished sends are handed back."""
        async with self._sender, self._pool.acquire() as listener:
            await listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
            self._running = True
            try:
                while not listener.is_closed():
                    await self._tick()
                raise ConnectionError("dispatcher listener connection closed")
            finally:
                self._running = False
                await self._hand_back_in_flight()
                with contextlib.suppress(Exception):
                    await listener.remove_listener(NOTIFY_CHANNEL, self._on_notify)

    def _free(self) -> int:
        return self._policy.max_in_flight - len(self._in_flight) - self._reserved

    @contextlib.contextmanager
    def slots(self) -> Iterator[int]:
        """Sending slots held for one insert of new deliveries (`FirstAttempts`)."""
        free = max(self._free(), 0) if self._running else 0
        self._reserved += free
        try:
            yield free
        finally:
            self._reserved -= free

    async def start(self, jobs: Sequence[store.ClaimedDelivery], held_back: set[uuid.UUID]) -> None:
        """First attempts of deliveries leased when inserted (within `slots`), after commit."""
        self._held_back |= held_back
        if not self._running:
            # Stopped meanwhile: due again at once for the next dispatcher.
            await store.release(self._pool, list(jobs))
            return
        for job in jobs:
            self._start(job, claimed=False)

    async def _tick(self) -> None:
        # Cleared before claiming, so a NOTIFY landing during the claim is not lost.
        self._wake.clear()
        free = self._free()
        claimed = 0
        try:
            claimed = await self.claim_and_start(free) if free > 0 else 0
        except TRANSIENT_ERRORS as exc:
            # Sends in flight carry on; claiming resumes at the next poll.
            log.warning("webhook_claim_failed", error=repr(exc))
        self._last_claim_full = free > 0 and claimed == free
        if self._last_claim_full:
            return  # a full batch: more may be due right now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._policy.poll_seconds)

    async def claim_and_start(self, limit: int) -> int:
        jobs = await store.claim_due(
            self._pool,
            limit=limit,
            per_endpoint=self._policy.endpoint_concurrency,
            lease_seconds=self._policy.lease_seconds,
        )
        for job in jobs:
            self._start(job, claimed=True)
        return len(jobs)

    def _start(self, job: store.ClaimedDelivery, *, claimed: bool) -> None:
        task = asyncio.create_task(self._deliver(job), name=f"webhook-{job.id}")
        self._in_flight[task] = (job, claimed)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        job, claimed = self._in_flight.pop(task, (None, False))
        if job is None:
            return
        merchant = job.merchant_id
        # A finished send frees a slot: claim again if something may be waiting for one
        # (as after any claimed send); a first attempt alone leaves nothing behind.
        if claimed or self._last_claim_full or merchant in self._held_back:
            self._wake.set()
        if merchant in self._held_back and all(
            other.merchant_id != merchant for other, _ in self._in_flight.values()
        ):
            self._held_back.discard(merchant)

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def _hand_back_in_flight(self) -> None:
        jobs = [job for job, _ in self._in_flight.values()]
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.shield(store.release(self._pool, jobs))

    async def _deliver(self, job: store.ClaimedDelivery) -> None:
        with bound_context(event_id=job.event_id, delivery_id=job.id, merchant_id=job.merchant_id):
            try:
                await self.attempt(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The lease expires and another pass retries: a bug must not lose an event.
                log.error("webhook_attempt_crashed", error=repr(exc), exc_info=True)

    async def attempt(self, job: store.ClaimedDelivery) -> None:
        now = self._clock()
        route = resolve_target(
            job.callback_url, job.endpoint, now - job.created_at, self._policy.endpoint_wait
        )
        match route:
            case Wait():
                await store.postpone(self._pool, job, now + ENDPOINT_RECHECK)
            case Skip():
                await store.skip(self._pool, job, route)
                WEBHOOK_ATTEMPTS.labels("not_sent").inc()
                log.info("webhook_not_delivered", status=route.status, reason=route.reason)
            case Target():
                await self._send_and_record(job, route, now)

    async def _send_and_record(
        self, job: store.ClaimedDelivery, target: Target, started_at: datetime
    ) -> None:
        with continued(
            "webhook POST",
            job.traceparent,
            SpanKind.CLIENT,
            event_id=job.event_id,
            event_type=job.event_type,
            attempt=job.attempt_count + 1,
        ) as span:
            outcome = await self._send(job, target)
            span.set_attribute("http.response.status_code", outcome.status_code or 0)
        decision = decide(
            outcome,
            attempts_made=job.attempt_count + 1,
            schedule=self._policy.schedule,
            now=self._clock(),
            target=target,
            failing_since=job.endpoint.failing_since if job.endpoint else None,
            disable_after=self._policy.disable_after,
            rng=self._rng,
        )
        # The merchant has been called: keep trying to record it rather than let the lease
        # expire into a duplicate send.
        await retry_transient(
            lambda: self._record(job, target, started_at, outcome, decision),
            RECORD_RETRY_SECONDS,
            what="record webhook attempt",
        )
        _count_attempt(decision.status, self._clock() - job.created_at)
        log.info(
            "webhook_attempted",
            attempt=job.attempt_count + 1,
            host=urlsplit(target.url).hostname,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            next_status=decision.status,
            endpoint_disabled=decision.disable_endpoint,
        )

    async def _record(
        self,
        job: store.ClaimedDelivery,
        target: Target,
        started_at: datetime,
        outcome: AttemptOutcome,
        decision: Decision,
    ) -> bool:
        url_shown = without_credentials(target.url)
        if decision.status == "succeeded" and decision.disable_endpoint is None:
            # Successes finishing together share a statement (`SuccessLog`).
            success = store.Success(job, target, url_shown, started_at, outcome)
            return await self._successes.record(success)
        return await store.record_attempt(
            self._pool,
            job,
            target=target,
            url_shown=url_shown,
            started_at=started_at,
            outcome=outcome,
            decision=decision,
        )

    async def _send(self, job: store.ClaimedDelivery, target: Target) -> AttemptOutcome:
        assert job.endpoint is not None
        try:
            secrets = [self._open_secret(s) for s in signing_secrets(job.endpoint, self._clock())]
        except ValueError:
            # A platform key problem, not the merchant's: retried on the normal schedule.
            return AttemptOutcome(None, "signing secret cannot be decrypted")
        timestamp = int(time.time())
        headers = {
            SIGNATURE_HEADER: signature_header(secrets, timestamp, job.body),
            EVENT_ID_HEADER: job.event_id,
        }
        environment = "live" if job.environment == "live" else "test"
        return await self._sender.send(target.url, environment, job.body, headers)


_ATTEMPT_OUTCOME = {"succeeded": "delivered", "pending": "retry", "dead": "dead"}


def _count_attempt(status: str, since_event: timedelta) -> None:
    WEBHOOK_ATTEMPTS.labels(_ATTEMPT_OUTCOME.get(status, status)).inc()
    if status == "succeeded":
        WEBHOOK_DELIVERY_LAG.observe(max(since_event.total_seconds(), 0.0))
