"""Inbound PSP callbacks: verify, dedup in `provider_events`, (re-check), apply, publish.

The dedup record and the effect share one transaction, so a notification delivered twice
has one effect, and one that failed half-way is accepted again on the PSP's retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from enum import Enum

from fluxpay_common.logging import bound_context, get_logger
from provider_connectors.adapters import repository as repo
from provider_connectors.domain.callback_shape import shape_problem
from provider_connectors.domain.model import (
    Attempt,
    CallbackEvent,
    ProviderResult,
    RefundResult,
)
from provider_connectors.service_layer.engine import Engine, apply_result_at

log = get_logger(__name__)


class CallbackOutcome(Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    UNKNOWN = "unknown"
    IGNORED = "ignored"


class MalformedCallback(ValueError):
    """A verified callback whose shape we cannot use: 400, no effect, not recorded."""


async def handle_callback(
    engine: Engine, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
) -> CallbackOutcome:
    """Raises `InvalidSignature` before anything is read from an unverified body, and
    `MalformedCallback` for a verified one we cannot use."""
    event = _parsed(engine, headers, body, query)
    with bound_context(provider_event_id=event.event_id, provider_event=event.event_type):
        if event.refund_id is not None or event.refund_psp_reference is not None:
            return await _refund_callback(engine, event)
        if event.payment_id is None and not (event.psp_reference or event.reference):
            log.info("callback_ignored")  # a verified event type we do not act on
            return CallbackOutcome.IGNORED
        return await _payment_callback(engine, event)


def _parsed(
    engine: Engine, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
) -> CallbackEvent:
    try:
        event = engine.connector.parse_callback(headers, body, query)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # A parser meeting an object where it expects text (or the reverse).
        raise MalformedCallback(f"unusable notification ({type(exc).__name__})") from exc
    if (problem := shape_problem(event)) is not None:
        raise MalformedCallback(problem)
    return event


async def _payment_callback(engine: Engine, event: CallbackEvent) -> CallbackOutcome:
    found = await _attempt_of(engine, event)
    if found is None:
        log.warning("callback_for_unknown_attempt")
        return CallbackOutcome.UNKNOWN
    snapshot, version = found
    payment_id = snapshot.payment_id
    with bound_context(payment_id=payment_id):
        result = event.result or ProviderResult(status=None)
        if event.recheck:
            # The callback is a hint; the PSP's status endpoint is the truth.
            result = await engine.connector.fetch_status(snapshot)
        if result.status is None:
            # No news (an unmodelled status, or nothing decided yet): not recorded as
            # seen, so the PSP's resend, or a later notification, is still heard.
            log.info("callback_without_news")
            return CallbackOutcome.IGNORED
        async with engine.pool.acquire() as conn, engine.transaction(conn):
            if not await repo.record_event(
                conn, engine.provider, event.event_id, event.event_type, payment_id
            ):
                log.info("callback_duplicate_ignored")
                return CallbackOutcome.DUPLICATE
            # Applied to the attempt as read above if it is still so (no second read),
            # else under its row lock as it now stands.
            applied = await apply_result_at(
                conn, engine.provider, snapshot, _polling_kept(result, snapshot), version=version
            )
            if applied is None:
                locked = await repo.get_attempt(conn, payment_id, lock=True)
                assert locked is not None
                await engine.apply_locked(conn, locked[0], _polling_kept(result, locked[0]))
    return CallbackOutcome.APPLIED


def _polling_kept(result: ProviderResult, attempt: Attempt) -> ProviderResult:
    """A callback does not stop the polling of an unsettled attempt."""
    if result.next_poll_at is None:
        return replace(result, next_poll_at=attempt.next_poll_at)
    return result


async def _refund_callback(engine: Engine, event: CallbackEvent) -> CallbackOutcome:
    refund_id = event.refund_id
    async with engine.pool.acquire() as conn:
        if refund_id is None and event.refund_psp_reference:
            refund_id = await repo.find_refund_id(conn, engine.provider, event.refund_psp_reference)
        refund = await repo.get_refund(conn, refund_id) if refund_id else None
        found = await repo.get_attempt(conn, refund.payment_id) if refund else None
    if refund is None or found is None:
        log.warning("callback_for_unknown_refund")
        return CallbackOutcome.UNKNOWN
    result = event.refund_result or RefundResult(status="pending")
    if event.recheck:
        if refund.psp_reference is None and event.refund_psp_reference:
            refund = replace(refund, psp_reference=event.refund_psp_reference)
        result = await engine.connector.fetch_refund_status(found[0], refund)
    async with engine.pool.acquire() as conn, engine.transaction(conn):
        if not await repo.record_event(
            conn, engine.provider, event.event_id, event.event_type, refund.payment_id
        ):
            return CallbackOutcome.DUPLICATE
        await engine.apply_refund_locked(conn, refund.refund_id, result)
    return CallbackOutcome.APPLIED


async def _attempt_of(engine: Engine, event: CallbackEvent) -> tuple[Attempt, int] | None:
    """The attempt the notification names (by our id, its reference or ours) and its version."""
    async with engine.pool.acquire() as conn:
        if event.payment_id is not None and (
            found := await repo.get_attempt(conn, event.payment_id)
        ):
            return found
        return await repo.find_attempt(
            conn, engine.provider, psp_reference=event.psp_reference, reference=event.reference
        )
