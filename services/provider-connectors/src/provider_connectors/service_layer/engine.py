"""The generic engine: persistence, dedup and publishing around any connector.

Rules kept here once for every PSP:
- a command's inbox claim and its first write share one transaction; the attempt (with
  the connector's idempotency keys) is committed before the PSP is called;
- PSP calls happen outside database transactions (except OTP, which must be serialized);
  their results are applied under the attempt's row lock against the stored status (when
  the caller read the attempt at a version, one UPDATE guarded by that version stands for
  the lock and the second read: it writes only if nothing changed since);
- each distinct status change is published once, through the outbox, by the statement
  that stores it (its outbox row in a CTE of the attempt's UPDATE); an RPC reply is that
  same message when the status changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, assert_never

import asyncpg
import orjson
from faststream.rabbit.annotations import RabbitMessage

from fluxpay_common import inbox
from fluxpay_common.ids import utcnow
from fluxpay_common.logging import get_logger
from fluxpay_common.messages import (
    CancelAtProvider,
    InitiatePayment,
    ProviderCommand,
    ProviderPaymentUpdate,
    RefundAtProvider,
    SubmitOtp,
    SyncStatus,
)
from fluxpay_common.outbox import OutboxRelay, add_to_outbox, outbox_transaction
from fluxpay_common.topology import PROVIDER, provider_update_key
from fluxpay_common.tracing import within_trace_of
from provider_connectors.adapters import repository as repo
from provider_connectors.connectors.base import (
    AttemptNotFound,
    Clock,
    Connector,
    ConnectorError,
    FlowNotSupported,
    ProviderMisconfigured,
    ProviderUnavailable,
)
from provider_connectors.domain.model import (
    MISCONFIGURED_TRIES,
    Attempt,
    ProviderResult,
    RefundAttempt,
    RefundResult,
)
from provider_connectors.domain.status import (
    AttemptStatus,
    is_publishable,
    is_terminal,
    refund_should_apply,
    should_apply,
)
from provider_connectors.service_layer.updates import (
    attempt_not_started,
    new_attempt,
    new_refund,
    otp_not_ready,
    payment_update,
    refund_update,
    refused_refund,
)

log = get_logger(__name__)
Fetch = Callable[[Attempt], Awaitable[ProviderResult]]
# A status fetched from a snapshot that changed meanwhile is fetched again, this many times.
STALE_RETRIES = 3
# In the attempt's data: how many updates were published for the payment (their sequence).
UPDATE_SEQUENCE = repo.UPDATE_SEQUENCE


@dataclass
class Engine:
    pool: asyncpg.Pool
    connector: Connector
    provider: str
    clock: Clock = utcnow
    # How long a claimed or in-flight attempt is left alone before the poller resumes it.
    lease: timedelta = timedelta(seconds=30)
    # Publishes the updates a transaction adds right after it commits (else the sweep does).
    relay: OutboxRelay | None = None

    @property
    def consumer(self) -> str:
        return f"connector.{self.provider}"

    def transaction(self, conn: asyncpg.Connection) -> AbstractAsyncContextManager[Any]:
        return outbox_transaction(conn, self.relay)

    async def handle(
        self, command: ProviderCommand, _raw: RabbitMessage | None = None
    ) -> ProviderPaymentUpdate | None:
        match command:
            case InitiatePayment():
                await self.initiate(command)
                return None
            case SubmitOtp():
                return await self.submit_otp(command)
            case CancelAtProvider():
                await self.cancel(command)
                return None
            case RefundAtProvider():
                await self.refund(command)
                return None
            case SyncStatus():
                return await self.sync(command)
            case _:
                assert_never(command)

    # ------------------------------------------------------------ payments

    async def initiate(self, cmd: InitiatePayment) -> None:
        attempt = new_attempt(cmd, self.clock(), self.lease)
        attempt = _with_data(attempt, self.connector.prepare(attempt))
        async with self.pool.acquire() as conn:
            stored = await repo.claim_and_insert_attempt(
                conn, attempt, cmd.message_id, self.consumer
            )
        if stored is None:
            log.info("initiate_ignored_handled_or_attempt_exists")
            return
        await self.start_at_psp(*stored)

    async def start_at_psp(self, attempt: Attempt, version: int | None = None) -> None:
        """Ask the PSP to start; an unknown outcome is left to the poller (same keys)."""
        try:
            result = await self.connector.initiate(attempt)
        except ProviderUnavailable as exc:
            log.warning("initiate_outcome_unknown", error=str(exc), retry_at=attempt.next_poll_at)
            return
        except Exception:
            log.exception("initiate_crashed", retry_at=attempt.next_poll_at)
            return
        await self.apply(attempt, result, version)

    async def submit_otp(self, cmd: SubmitOtp) -> ProviderPaymentUpdate:
        await self._start_if_unseen(cmd)
        # Held under the row lock: OTP attempts are counted, so submissions are serialized.
        async with self.pool.acquire() as conn, self.transaction(conn):
            found = await repo.get_attempt(conn, cmd.payment_id, lock=True)
            if found is None:
                # Neither the initiate nor a copy of it reached us: a retryable answer now.
                log.warning("otp_for_unknown_attempt")
                return otp_not_ready(cmd)
            attempt, _ = found
            if attempt.status == "pending":
                # The push is not at the PSP yet (say, this process restarted): no code can be
                # checked. Answer without a status change so the payment stays awaiting_otp.
                log.info("otp_before_push_started")
                return otp_not_ready(cmd)
            if not await inbox.claim(conn, cmd.message_id, self.consumer):
                return payment_update(attempt, cmd.correlation_id)
            if attempt.status != "awaiting_otp":
                return payment_update(attempt, cmd.correlation_id)
            try:
                result = await self.connector.submit_otp(attempt, cmd.otp)
            except FlowNotSupported:
                log.warning("otp_not_supported_by_provider")
                return payment_update(attempt, cmd.correlation_id)
            attempt, update = await self.apply_locked(conn, attempt, result)
        return update or payment_update(attempt, cmd.correlation_id)

    async def cancel(self, cmd: CancelAtProvider) -> None:
        loaded = await self._load_versioned(cmd)
        if loaded is None or is_terminal(loaded[0].status):
            await self._claim_only(cmd)
            return
        found, version = loaded
        # Recorded before the PSP hears of it: the PSP's own news of the cancel (Stripe's
        # `checkout.session.expired`) may arrive first and must read as a cancel, not a timeout.
        found, _ = await self.apply(found, self._cancel_requested(found), version)
        try:
            result = await self.connector.cancel(found)
        except (FlowNotSupported, ProviderUnavailable) as exc:
            # No cancel at this PSP, or it cannot be reached: keep following the attempt
            # (an outcome still counts: money may move) but never start it again.
            log.info("cancel_not_done_at_provider", reason=str(exc))
            result = self._cancel_requested(found)
        async with self.pool.acquire() as conn, self.transaction(conn):
            if not await inbox.claim(conn, cmd.message_id, self.consumer):
                return
            locked = await repo.get_attempt(conn, cmd.payment_id, lock=True)
            assert locked is not None
            await self.apply_locked(conn, locked[0], result)

    def _cancel_requested(self, attempt: Attempt) -> ProviderResult:
        requested = attempt.data.get("cancel_requested_at") or self.clock().isoformat()
        return ProviderResult(
            status=None, next_poll_at=attempt.next_poll_at, data={"cancel_requested_at": requested}
        )

    async def sync(self, cmd: SyncStatus) -> ProviderPaymentUpdate:
        found = await self._start_if_unseen(cmd)
        if found is None:
            log.warning("sync_for_unknown_attempt")
            return attempt_not_started(cmd)
        try:
            attempt, update = await self.refresh(
                cmd.payment_id, self.current_status, snapshot=found
            )
        except ConnectorError as exc:
            log.warning("sync_status_unavailable", error=str(exc))
            attempt, update = found[0], None
        await self._claim_only(cmd)
        return update or payment_update(attempt, cmd.correlation_id)

    async def current_status(self, attempt: Attempt) -> ProviderResult:
        """The PSP's word on an attempt; a `pending` one the PSP never saw is started again
        with the same idempotency keys (never a second charge), unless it has expired or
        was cancelled meanwhile."""
        try:
            return await self.connector.fetch_status(attempt)
        except AttemptNotFound:
            if attempt.status != "pending":
                raise
        expired = attempt.expires_at is not None and self.clock() >= attempt.expires_at
        if expired or attempt.data.get("cancel_requested_at"):
            return ProviderResult(
                status="cancelled",
                failure_code="not_initiated",
                failure_message="The provider never received the payment before it ended.",
            )
        return await self.connector.initiate(attempt)

    async def refresh(
        self, payment_id: uuid.UUID, fetch: Fetch, snapshot: tuple[Attempt, int] | None = None
    ) -> tuple[Attempt, ProviderPaymentUpdate | None]:
        """Fetch the PSP's status and apply it, unless the attempt changed meanwhile (then
        fetch again from the fresh state: the sandbox decides from the stored state).
        `snapshot`: the attempt and its version as the caller just read them (the poller's
        lease returns them), spared a read."""
        for _ in range(STALE_RETRIES):
            if snapshot is None:
                async with self.pool.acquire() as conn:
                    snapshot = await repo.get_attempt(conn, payment_id)
                assert snapshot is not None
            attempt, version = snapshot
            result = await fetch(attempt)
            applied = await self.apply_if_unchanged(attempt, version, result)
            if applied is not None:
                return applied
            snapshot = None
        log.warning("status_refresh_gave_up_on_contention")
        return attempt, None

    async def apply(
        self, attempt: Attempt, result: ProviderResult, version: int | None = None
    ) -> tuple[Attempt, ProviderPaymentUpdate | None]:
        """Apply to the attempt as stored now: at once when it is still at `version` (the
        version `attempt` was read at), else under its row lock, read again."""
        if version is not None:
            applied = await self.apply_if_unchanged(attempt, version, result)
            if applied is not None:
                return applied
        async with self.pool.acquire() as conn, self.transaction(conn):
            locked = await repo.get_attempt(conn, attempt.payment_id, lock=True)
            assert locked is not None
            return await self.apply_locked(conn, locked[0], result)

    async def apply_if_unchanged(
        self, snapshot: Attempt, version: int, result: ProviderResult
    ) -> tuple[Attempt, ProviderPaymentUpdate | None] | None:
        """Apply against a snapshot without reading the row again: the UPDATE, guarded by
        the snapshot's version, takes the row lock and writes only if nothing changed since
        (None otherwise: nothing written, nothing published). The write and the update it
        publishes are one statement (no BEGIN/COMMIT), handed to the relay once it returned;
        only a live attempt's review queue, kept in step, needs a transaction."""
        async with self.pool.acquire() as conn:
            if not needs_transaction(snapshot):
                return await apply_result_at(
                    conn, self.provider, snapshot, result, version=version, relay=self.relay
                )
            async with self.transaction(conn):
                return await apply_result_at(
                    conn, self.provider, snapshot, result, version=version, relay=self.relay
                )

    async def apply_locked(
        self, conn: asyncpg.Connection, current: Attempt, result: ProviderResult
    ) -> tuple[Attempt, ProviderPaymentUpdate | None]:
        return await apply_result(conn, self.provider, current, result, self.relay)

    # ------------------------------------------------------------ refunds

    async def refund(self, cmd: RefundAtProvider) -> None:
        now = self.clock()
        async with self.pool.acquire() as conn, self.transaction(conn):
            if not await inbox.claim(conn, cmd.message_id, self.consumer):
                return
            found = await repo.get_attempt(conn, cmd.payment_id)
            if found is None or found[0].status != "completed":
                await self._refuse_refund(conn, cmd, found[0] if found else None)
                return
            attempt = found[0]
            stored = await repo.insert_refund(conn, new_refund(cmd, now, self.lease))
        if stored is not None:
            await self.start_refund(attempt, stored)

    async def start_refund(self, attempt: Attempt, refund: RefundAttempt) -> None:
        try:
            result = await self.connector.refund(attempt, refund)
        except FlowNotSupported:
            result = RefundResult(status="failed", failure_code="refund_not_supported")
        except ProviderMisconfigured as exc:
            await self.refund_misconfigured(refund, exc)
            return
        except ProviderUnavailable as exc:
            log.warning("refund_outcome_unknown", error=str(exc), retry_at=refund.next_poll_at)
            return
        except Exception:
            log.exception("refund_crashed", retry_at=refund.next_poll_at)
            return
        await self.apply_refund(refund, result)

    async def refund_misconfigured(self, refund: RefundAttempt, exc: ProviderMisconfigured) -> None:
        """A PSP refusing us for configuration is retried (it may be fixed meanwhile); a
        refund it never acknowledged then fails clearly instead of staying pending."""
        tries = int(refund.data.get("misconfigured_tries", 0)) + 1
        log.error("refund_provider_misconfigured", error=str(exc), tries=tries)
        if tries >= MISCONFIGURED_TRIES and not refund.reached_psp:
            failed = RefundResult(
                status="failed",
                failure_code="provider_misconfigured",
                failure_message=f"The refund could not be sent to the provider: {exc}",
            )
            await self.apply_refund(refund, failed)
            return
        retry = RefundResult(
            status="pending",
            next_poll_at=self.clock() + self.lease,
            data={"misconfigured_tries": tries},
        )
        await self.apply_refund(refund, retry)

    async def apply_refund(self, refund: RefundAttempt, result: RefundResult) -> None:
        async with self.pool.acquire() as conn, self.transaction(conn):
            await self.apply_refund_locked(conn, refund.refund_id, result)

    async def apply_refund_locked(
        self, conn: asyncpg.Connection, refund_id: uuid.UUID, result: RefundResult
    ) -> None:
        current = await repo.get_refund(conn, refund_id, lock=True)
        assert current is not None
        changed = refund_should_apply(current.status, result.status)
        status = result.status if changed else current.status
        patch = dict(result.data)
        if changed:
            patch.update(failure_code=result.failure_code, failure_message=result.failure_message)
        saved = await repo.save_refund(
            conn,
            refund_id,
            status=status,
            psp_reference=result.psp_reference or current.psp_reference,
            next_poll_at=(result.next_poll_at or current.next_poll_at)
            if status == "pending"
            else None,
            data_patch=patch,
        )
        if changed:
            key = provider_update_key(self.provider, f"refund_{status}")
            await add_to_outbox(conn, PROVIDER, key, refund_update(saved))
            log.info("provider_refund_settled", refund_id=str(refund_id), status=status)

    async def _refuse_refund(
        self, conn: asyncpg.Connection, cmd: RefundAtProvider, attempt: Attempt | None
    ) -> None:
        code = "payment_not_found" if attempt is None else "payment_not_completed"
        message = "The provider holds no completed payment to refund."
        log.warning("refund_refused", failure_code=code)
        key = provider_update_key(self.provider, "refund_failed")
        await add_to_outbox(conn, PROVIDER, key, refused_refund(cmd, code, message))

    # ------------------------------------------------------------ helpers

    async def _load_versioned(self, cmd: ProviderCommand) -> tuple[Attempt, int] | None:
        async with self.pool.acquire() as conn:
            return await repo.get_attempt(conn, cmd.payment_id)

    async def _start_if_unseen(self, cmd: SubmitOtp | SyncStatus) -> tuple[Attempt, int] | None:
        """The initiate travels through the orchestrator's outbox, this request directly, so
        the request may come first: start the attempt from the copy it carries. The copy has
        the initiate's message id, so whichever arrives second is a duplicate (inbox), and
        the attempt row is inserted once either way. Returns the attempt as it now stands."""
        found = await self._load_versioned(cmd)
        initiate = cmd.initiate
        if found is not None or initiate is None:
            return found
        if (initiate.payment_id, initiate.provider) != (cmd.payment_id, self.provider):
            return None
        log.info("initiate_overtaken_starting_from_request", request=cmd.type)
        await self.initiate(initiate)
        return await self._load_versioned(cmd)

    async def _claim_only(self, cmd: ProviderCommand) -> None:
        async with self.pool.acquire() as conn:
            await inbox.claim(conn, cmd.message_id, self.consumer)


@dataclass(frozen=True)
class _Outcome:
    """What a result does to an attempt, decided against its stored status."""

    accepted: bool
    status: AttemptStatus
    patch: dict[str, Any]
    publish: bool
    sequence: int


def _outcome(current: Attempt, result: ProviderResult) -> _Outcome:
    new_status = current.status
    accepted = result.status is not None and (
        result.status == current.status or should_apply(current.status, result.status)
    )
    patch = dict(result.data)
    if accepted:
        assert result.status is not None
        new_status = result.status
        patch.update(result.data_patch())
        patch["failure_code"] = result.failure_code
        patch["failure_message"] = result.failure_message
    publish = new_status != current.status and is_publishable(new_status)
    # The orchestrator applies a payment's updates in this order (update n after n-1).
    sequence = int(current.data.get(UPDATE_SEQUENCE, 0)) + 1
    if publish:
        patch[UPDATE_SEQUENCE] = sequence
    return _Outcome(accepted, new_status, patch, publish, sequence)


def needs_transaction(current: Attempt) -> bool:
    """Whether applying a result to `current` writes more than one statement: a live
    attempt keeps the review queue in step (an update to publish shares the attempt's)."""
    return current.environment == "live"


async def apply_result(
    conn: asyncpg.Connection,
    provider: str,
    current: Attempt,
    result: ProviderResult,
    relay: OutboxRelay | None = None,
) -> tuple[Attempt, ProviderPaymentUpdate | None]:
    """Apply a PSP's (or an operator's) word to a locked attempt against its stored status;
    publish a status change once, through the outbox; keep the review queue in step."""
    applied = await apply_result_at(conn, provider, current, result, version=None, relay=relay)
    assert applied is not None, "a locked attempt is always written"
    return applied


async def apply_result_at(
    conn: asyncpg.Connection,
    provider: str,
    current: Attempt,
    result: ProviderResult,
    *,
    version: int | None,
    relay: OutboxRelay | None = None,
) -> tuple[Attempt, ProviderPaymentUpdate | None] | None:
    """`apply_result`; with `version`, `current` is an unlocked snapshot at that version and
    the write happens only if the row is still at it (None when it is not: nothing written).

    A status change's update is built before the write, from `current` (as stored: the
    version guard or the row lock says so) with the change applied, and inserted in the
    outbox by the attempt's own statement. Outside a transaction, `relay` gets it once the
    statement returned; inside `relay.transaction`, after COMMIT."""
    outcome = _outcome(current, result)
    if not outcome.accepted and result.status is not None:
        log.info("stale_provider_status_ignored", stored=current.status, reported=result.status)
    written = _as_written(current, result, outcome)
    if not outcome.publish:
        saved = await _save(conn, written, outcome.patch, version, None)
        if saved is not None:
            await _keep_review_in_step(conn, saved)
        return None if saved is None else (saved, None)
    update = payment_update(written, sequence=outcome.sequence)
    messages = [(PROVIDER, provider_update_key(provider, outcome.status), update)]
    # From the poller or a PSP callback there is no current trace: the payment's goes on.
    with within_trace_of("provider update", current.data.get("traceparent")):
        announce = repo.Announcement(messages, outcome.sequence - 1, relay)
        saved = await _save(conn, written, outcome.patch, version, announce)
    if saved is None:
        return None
    await _keep_review_in_step(conn, saved)
    _check_announced(saved, update)
    log.info("provider_status_changed", previous=current.status, status=outcome.status)
    return saved, update


def _as_written(current: Attempt, result: ProviderResult, outcome: _Outcome) -> Attempt:
    """The attempt as the write will store it: `current` is the stored row (its version
    or its lock says so), its data merged with the patch as jsonb `||` does (top level),
    the values as JSON gives them back."""
    accepted = outcome.accepted
    return replace(
        current,
        status=outcome.status,
        psp_reference=(result.psp_reference if accepted else None) or current.psp_reference,
        otp_attempts=(result.otp_attempts if accepted else None) or current.otp_attempts,
        next_poll_at=None if is_terminal(outcome.status) else result.next_poll_at,
        data=orjson.loads(orjson.dumps({**current.data, **outcome.patch})),
    )


async def _save(
    conn: asyncpg.Connection,
    written: Attempt,
    patch: dict[str, Any],
    version: int | None,
    announce: repo.Announcement | None,
) -> Attempt | None:
    return await repo.save_attempt(
        conn,
        written.payment_id,
        status=written.status,
        psp_reference=written.psp_reference,
        otp_attempts=written.otp_attempts,
        next_poll_at=written.next_poll_at,
        data_patch=patch,
        version=version,
        announce=announce,
    )


def _check_announced(saved: Attempt, update: ProviderPaymentUpdate) -> None:
    """The update was built before the write: it must read as the stored attempt does."""
    stored = payment_update(saved, update.correlation_id, sequence=update.sequence)
    fields = {"occurred_at"}
    if stored.model_dump(exclude=fields) != update.model_dump(exclude=fields):
        log.error("provider_update_differs_from_stored_attempt", sequence=update.sequence)


async def _keep_review_in_step(conn: asyncpg.Connection, saved: Attempt) -> None:
    """A live attempt nobody polls any more without a final answer goes to the review queue
    (MTN calls back once; money may have moved); a final answer closes its review."""
    if saved.environment != "live":
        return  # the sandbox always decides: nothing to review
    if is_terminal(saved.status):
        await repo.close_review(conn, saved.payment_id, saved.status, "psp_answered", "provider")
    elif saved.next_poll_at is None and await repo.queue_review(
        conn, saved, "no_final_answer_after_polling"
    ):
        log.warning("attempt_queued_for_review", status=saved.status)


def _with_data(attempt: Attempt, extra: dict[str, object]) -> Attempt:
    return replace(attempt, data={**attempt.data, **extra})
