"""What the outside world tells the orchestrator: a connector's report (once, by inbox), the
clock (expiry), and the reconciliation's question about settled money."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from fluxpay_common.logging import bound_context, get_logger
from fluxpay_common.messages import (
    InspectPayment,
    ProviderPaymentUpdate,
    QueryReply,
    SettledMovementsQuery,
    provider_update_id,
)
from fluxpay_common.tracing import continued
from payment_orchestrator.domain.payment import (
    EXPIRED_FAILURE,
    Payment,
    PaymentChange,
)
from payment_orchestrator.domain.state_machine import (
    Refusal,
    Trigger,
    provider_trigger,
)
from payment_orchestrator.service_layer.dependencies import CONSUMER, Dependencies
from payment_orchestrator.service_layer.effects import (
    save_change,
)
from payment_orchestrator.service_layer.ports import UnitOfWork

log = get_logger(__name__)


@dataclass(frozen=True)
class OrderWait:
    """How long a provider update waits for its predecessor before it applies anyway."""

    budget_seconds: float = 15.0
    first_delay: float = 0.01


DEFAULT_ORDER_WAIT = OrderWait()


class UpdateOutOfOrder(Exception):
    """The connector's previous update of this payment has not been applied yet."""


async def on_published_update(
    update: ProviderPaymentUpdate, deps: Dependencies, wait: OrderWait = DEFAULT_ORDER_WAIT
) -> Payment | None:
    """A connector's published update, applied after the one it numbers before it.

    With prefetch above one (and with several orchestrators) a payment's `processing` and
    `completed` can be handled at once; applied out of order, `processing` would be refused
    and the merchant never told of it. The handler waits (the transaction rolled back, the
    row unlocked) for its predecessor to commit, which is usually a few milliseconds away;
    past `wait.budget_seconds` (a predecessor dead-lettered) it applies anyway.
    """
    delay = wait.first_delay
    deadline = time.monotonic() + wait.budget_seconds
    while True:
        try:
            return await on_provider_update(update, deps, in_order=True)
        except UpdateOutOfOrder:
            if time.monotonic() + delay > deadline:
                log.warning("provider_update_predecessor_missing", sequence=update.sequence)
                return await on_provider_update(update, deps)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


async def on_provider_update(
    update: ProviderPaymentUpdate, deps: Dependencies, *, in_order: bool = False
) -> Payment | None:
    """Apply a connector's report once (inbox); returns the payment as it now stands.
    `in_order`: raise `UpdateOutOfOrder` while its predecessor is not applied."""
    previous = None
    if in_order and update.sequence and update.sequence > 1:
        previous = provider_update_id(update.payment_id, update.sequence - 1)
    async with deps.open_uow() as uow:
        claim = await uow.claim_and_lock(
            update.payment_id, update.message_id, CONSUMER, predecessor=previous
        )
        payment = claim.payment
        if payment is None:
            # Never silently dropped: the consumer nacks (the claim rolls back with the
            # transaction) and the DLQ keeps it.
            raise LookupError(f"provider update for unknown payment {update.payment_id}")
        if not claim.first_time:
            return payment
        # A predecessor the claim did not see may have committed while the claim waited for
        # the row lock (its snapshot is older): a second look spares a rollback and a wait.
        if (
            previous is not None
            and not claim.predecessor_applied
            and not await uow.handled(previous)
        ):
            raise UpdateOutOfOrder(update.sequence)
        return await apply_update(uow, deps, payment, update)


async def apply_update(
    uow: UnitOfWork, deps: Dependencies, payment: Payment, update: ProviderPaymentUpdate
) -> Payment:
    """The report applied to the (locked, claimed) payment: saved, or refused and logged."""
    change = payment.apply(provider_trigger(update.status), reported_changes(update))
    if isinstance(change, Refusal):
        log.warning(
            "provider_update_ignored",
            status=payment.status.value,
            reported=update.status,
            reason=change.reason,
        )
        return payment
    return await save_change(uow, deps, change, f"provider:{update.provider}", update)


def reported_changes(update: ProviderPaymentUpdate) -> dict[str, Any]:
    """The columns a provider's report sets (what it does not say, it leaves alone)."""
    changes: dict[str, Any] = {"otp_attempts_left": update.otp_attempts_left}
    if update.psp_reference:
        changes["psp_reference"] = update.psp_reference
    if update.failure_code:
        changes["failure_code"] = update.failure_code
        changes["failure_message"] = update.failure_message
    if update.fee_minor is not None:
        changes["fee_minor"] = update.fee_minor
    if update.charged_amount_minor is not None:
        changes["charged_amount_minor"] = update.charged_amount_minor
    if update.checkout_url:
        changes["provider_checkout_url"] = update.checkout_url
    return changes


async def expire_due(deps: Dependencies, batch: int = 100) -> int:
    """Expire open payments past their deadline; returns how many were expired."""
    async with deps.open_uow() as uow:
        payments = await uow.due_for_expiry(batch)
        for payment in payments:
            with (
                bound_context(payment_id=payment.id),
                continued("expire payment", payment.traceparent, payment_id=payment.id),
            ):
                change = payment.apply(Trigger.EXPIRE, EXPIRED_FAILURE)
                if isinstance(change, PaymentChange):
                    await save_change(uow, deps, change, "expired", None)
                log.info("payment_expired")
    return len(payments)


async def inspect_payment(query: InspectPayment, deps: Dependencies) -> QueryReply:
    """For `fluxpay-admin inspect`: the payments the lookup names, whole (an operator's view,
    any merchant)."""
    async with deps.open_uow(transactional=False) as uow:
        payments = await uow.inspect(query.lookup)
    return QueryReply(data={"payments": payments})


async def settled_movements(query: SettledMovementsQuery, deps: Dependencies) -> QueryReply:
    """What the orchestrator says was collected and paid out (the ledger reconciles)."""
    async with deps.open_uow(transactional=False) as uow:
        movements = await uow.settled_movements(query)
    return QueryReply(data={"movements": [m.model_dump(mode="json") for m in movements]})
