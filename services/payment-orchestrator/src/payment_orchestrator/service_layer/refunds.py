"""Refunds: the merchant's command (check, hold the amount at the ledger, re-check and record
under the payment's lock) and the provider's outcome (count it, announce it)."""

from __future__ import annotations

import uuid

from fluxpay_common.ids import new_id
from fluxpay_common.logging import get_logger
from fluxpay_common.messages import (
    Message,
    ProviderRefundUpdate,
    RefundAtProvider,
    RefundPayment,
    ReleaseRefundHold,
    Reply,
    ReserveRefund,
)
from fluxpay_common.money import to_minor
from fluxpay_common.rpc import RpcTimeout, RpcUnavailable
from fluxpay_common.topology import COMMANDS, LEDGER_QUERIES_KEY, connector_key
from payment_orchestrator.domain.errors import (
    BalanceUnavailable,
    CommandRefused,
    InsufficientBalance,
    RefundAlreadyPending,
)
from payment_orchestrator.domain.payment import (
    Payment,
    PaymentChange,
    Refund,
    refund_id_for,
)
from payment_orchestrator.domain.state_machine import (
    Trigger,
)
from payment_orchestrator.domain.status import RefundStatus
from payment_orchestrator.service_layer.dependencies import CONSUMER, Dependencies
from payment_orchestrator.service_layer.effects import (
    emit_refund_event,
    find_payment,
    save_change,
)
from payment_orchestrator.service_layer.ports import (
    UnitOfWork,
)
from payment_orchestrator.views import refund_view

log = get_logger(__name__)


async def refund_payment(cmd: RefundPayment, deps: Dependencies) -> Reply:
    """Check, hold the amount at the ledger, then re-check and record under the lock.

    No lock is held across the ledger's request: the hold serializes refunds per merchant
    balance there; the payment's lock guards only the re-check and the insert.
    """
    async with deps.open_uow(transactional=False) as uow:
        payment = await find_payment(uow, cmd)
        if existing := await _refund_by_key(uow, payment, cmd):
            return existing
        amount = payment.refundable(await uow.pending_refunds(payment.id), cmd.amount)
    refund_id = refund_id_for(payment.id, cmd.idempotency_key) or new_id()
    await _hold_at_ledger(cmd, payment, refund_id, amount, deps)
    try:
        return await _record_under_lock(cmd, refund_id, amount, deps)
    except CommandRefused:
        raise
    except Exception:
        # The hold must not outlive a refund that was never recorded.
        await _release_after_failure(cmd, payment, refund_id, deps)
        raise


async def _record_under_lock(
    cmd: RefundPayment, refund_id: uuid.UUID, amount: int, deps: Dependencies
) -> Reply:
    """Re-check what is refundable under the payment's lock, then record the refund or
    release the hold (refused)."""
    refused: CommandRefused | None = None
    async with deps.open_uow() as uow:
        payment = await find_payment(uow, cmd, lock=True)
        if existing := await _refund_by_key(uow, payment, cmd):
            # The same request, concurrently: its refund carries this very hold.
            return existing
        refused = _recheck(payment, await uow.pending_refunds(payment.id), cmd, amount)
        if refused is None:
            refund = await _record_refund(uow, cmd, payment, refund_id, amount)
        else:
            await _release_hold(uow, cmd, payment, refund_id, deps)
    if refused is not None:
        raise refused
    return Reply(refund=refund_view(refund, payment.reference), created=True)


async def _release_after_failure(
    cmd: RefundPayment, payment: Payment, refund_id: uuid.UUID, deps: Dependencies
) -> None:
    try:
        async with deps.open_uow() as uow:
            await _release_hold(uow, cmd, payment, refund_id, deps)
    except Exception as exc:
        # A retry with the same Idempotency-Key finds the hold again (same refund id).
        log.error("refund_hold_not_released", refund_id=str(refund_id), error=repr(exc))


async def _refund_by_key(uow: UnitOfWork, payment: Payment, cmd: RefundPayment) -> Reply | None:
    if not cmd.idempotency_key:
        return None
    refund = await uow.refund_by_key(payment.id, cmd.idempotency_key)
    if refund is None:
        return None
    return Reply(refund=refund_view(refund, payment.reference), created=False)


def _recheck(
    payment: Payment, pending: int, cmd: RefundPayment, held: int
) -> CommandRefused | None:
    """Under the lock: the refund still fits the payment, for the amount held."""
    try:
        amount = payment.refundable(pending, cmd.amount)
    except CommandRefused as refused:
        return refused
    if amount != held:
        return RefundAlreadyPending(
            "Another refund of this payment was accepted meanwhile; read the payment and retry."
        )
    return None


async def _hold_at_ledger(
    cmd: RefundPayment, payment: Payment, refund_id: uuid.UUID, amount: int, deps: Dependencies
) -> None:
    """A refund is paid from the merchant's available balance: the ledger holds the amount
    (net of every other hold) or refuses."""
    if deps.reserve_refund is None:
        return
    request = ReserveRefund(
        correlation_id=cmd.correlation_id,
        merchant_id=payment.merchant_id,
        environment=payment.environment,
        refund_id=refund_id,
        payment_id=payment.id,
        currency=payment.currency,
        amount_minor=to_minor(amount),
    )
    try:
        held, available = await deps.reserve_refund(request)
    except (RpcTimeout, RpcUnavailable):
        raise BalanceUnavailable(
            "The merchant's balance could not be read; retry the refund shortly."
        ) from None
    if not held:
        raise InsufficientBalance(
            f"Your available balance ({max(available, 0) // 100} {payment.currency}) does not"
            f" cover this refund of {amount} {payment.currency}."
        )


async def _release_hold(
    uow: UnitOfWork, cmd: RefundPayment, payment: Payment, refund_id: uuid.UUID, deps: Dependencies
) -> None:
    if deps.reserve_refund is None:
        return
    release = ReleaseRefundHold(
        correlation_id=cmd.correlation_id,
        merchant_id=payment.merchant_id,
        environment=payment.environment,
        refund_id=refund_id,
    )
    await uow.publish(COMMANDS, LEDGER_QUERIES_KEY, release)


async def _record_refund(
    uow: UnitOfWork, cmd: RefundPayment, payment: Payment, refund_id: uuid.UUID, amount: int
) -> Refund:
    assert payment.provider is not None, "a completed payment went through a provider"
    refund = await uow.add_refund(
        Refund(
            id=refund_id,
            payment_id=payment.id,
            merchant_id=payment.merchant_id,
            environment=payment.environment,
            idempotency_key=cmd.idempotency_key,
            status=RefundStatus.PENDING,
            amount=amount,
            currency=payment.currency,
            reason=cmd.reason,
            metadata=cmd.metadata,
            psp_reference=None,
            failure_code=None,
            failure_message=None,
            created_at=payment.created_at,  # the store's clock replaces it
            completed_at=None,
        )
    )
    at_provider = RefundAtProvider(
        correlation_id=cmd.correlation_id,
        payment_id=payment.id,
        merchant_id=payment.merchant_id,
        environment=payment.environment,
        provider=payment.provider,
        refund_id=refund.id,
        amount=amount,
        currency=payment.currency,
        psp_reference=payment.psp_reference,
        phone=payment.phone,
    )
    await uow.publish(COMMANDS, connector_key(payment.provider), at_provider)
    log.info("refund_requested", refund_id=str(refund.id), amount=amount)
    return refund


async def on_refund_update(update: ProviderRefundUpdate, deps: Dependencies) -> None:
    async with deps.open_uow() as uow:
        if not await uow.claim(update.message_id, CONSUMER):
            return
        payment = await uow.lock(update.payment_id)
        refund = await uow.lock_refund(update.refund_id)
        if payment is None or refund is None:
            raise LookupError(f"refund update for unknown refund {update.refund_id}")
        if not refund.is_pending:
            log.warning("refund_update_ignored", refund_status=refund.status.value)
            return
        status = RefundStatus(update.status)
        refund = await uow.settle_refund(
            refund.id, status, update.psp_reference, update.failure_code, update.failure_message
        )
        if status is RefundStatus.COMPLETED:
            payment = await _count_refunded(uow, deps, payment, refund, update)
        await emit_refund_event(uow, deps, payment, refund, update.correlation_id)
        log.info("refund_settled", refund_id=str(refund.id), status=status.value)


async def _count_refunded(
    uow: UnitOfWork, deps: Dependencies, payment: Payment, refund: Refund, cause: Message
) -> Payment:
    """The refund that brings the refunded amount to the full amount refunds the payment."""
    payment = await uow.add_refunded(payment.id, refund.amount)
    if payment.is_fully_refunded():
        change = payment.apply(Trigger.FULLY_REFUNDED)
        if isinstance(change, PaymentChange):
            payment = await save_change(uow, deps, change, "fully_refunded", cause)
    return payment
