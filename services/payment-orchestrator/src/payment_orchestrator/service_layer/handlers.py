"""One handler per command and event the orchestrator consumes; routing in two visible maps.

Commands (request/reply from the gateway) answer a `Reply` or raise a `CommandRefused` the
entrypoint turns into an error reply. Provider updates and the expiry sweep change payments
and announce each change through the outbox (events to the ledger and the webhook
dispatcher, commands to connectors) in the same unit of work. No unit of work stays open
across a request to another service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from fluxpay_common import catalog
from fluxpay_common.fees import FeeSchedule
from fluxpay_common.ids import new_id
from fluxpay_common.logging import bound_context, get_logger
from fluxpay_common.messages import (
    CancelAtProvider,
    CancelPayment,
    ConfirmPayment,
    CreatePayment,
    ErrorBody,
    GetPayment,
    InitiatePayment,
    Message,
    PaymentEvent,
    PaymentView,
    ProviderPaymentUpdate,
    ProviderRefundUpdate,
    QueryReply,
    RefundAtProvider,
    RefundEvent,
    RefundPayment,
    ReleaseRefundHold,
    Reply,
    ReserveRefund,
    SelectOperator,
    SettledMovementsQuery,
    SubmitOtp,
    SyncStatus,
)
from fluxpay_common.money import to_minor
from fluxpay_common.rpc import RpcTimeout, RpcUnavailable
from fluxpay_common.topology import COMMANDS, EVENTS, LEDGER_QUERIES_KEY, connector_key
from payment_orchestrator.domain.errors import (
    BalanceUnavailable,
    CommandRefused,
    InsufficientBalance,
    OperatorUnavailable,
    OtpAttemptsExceeded,
    OtpInvalid,
    OtpNotReady,
    PaymentNotAwaitingOtp,
    PaymentNotAwaitingPayment,
    PaymentNotCancellable,
    PaymentNotFound,
    ProviderUnavailable,
    ReferenceAlreadyExists,
    RefundAlreadyPending,
)
from payment_orchestrator.domain.payment import (
    EXPIRED_FAILURE,
    OTP_ATTEMPTS,
    NewPayment,
    Payment,
    PaymentChange,
    Refund,
    initial_status,
    otp_attempts,
    refund_id_for,
)
from payment_orchestrator.domain.routing import route
from payment_orchestrator.domain.state_machine import (
    Refusal,
    Trigger,
    provider_trigger,
)
from payment_orchestrator.domain.status import PaymentStatus, RefundStatus
from payment_orchestrator.service_layer.ports import (
    ConnectorCall,
    OpenUnitOfWork,
    RefundReservation,
    UnitOfWork,
)
from payment_orchestrator.views import payment_view, refund_view

log = get_logger(__name__)
CONSUMER = "orchestrator"
# The commands that name an existing payment (by the merchant's reference or by id).
PaymentCommand: TypeAlias = (
    GetPayment | ConfirmPayment | CancelPayment | RefundPayment | SelectOperator
)


@dataclass(frozen=True)
class Policy:
    """The settings the rules need (from `config.Settings`, wired in bootstrap)."""

    routes: dict[str, str]
    checkout_base_url: str
    fees: FeeSchedule
    expiry_time_scale: float = 1.0


@dataclass(frozen=True)
class Dependencies:
    open_uow: OpenUnitOfWork
    call_connector: ConnectorCall
    # None: no ledger to hold refunds at (the handler tests of other flows).
    reserve_refund: RefundReservation | None
    policy: Policy

    def view(self, payment: Payment) -> PaymentView:
        return payment_view(payment, self.policy.checkout_base_url, self.policy.fees)


# ---------------------------------------------------------------- commands (request/reply)


async def create_payment(cmd: CreatePayment, deps: Dependencies) -> Reply:
    provider = _provider_for(cmd, deps) if cmd.mode == "direct" else None
    status = initial_status(cmd.mode, _otp_operator(cmd.country, cmd.operator))
    new = NewPayment(
        id=new_id(),
        merchant_id=cmd.merchant_id,
        environment=cmd.environment,
        reference=cmd.reference,
        idempotency_key=cmd.idempotency_key,
        status=status,
        amount=cmd.amount,
        currency=cmd.currency,
        country=cmd.country,
        mode=cmd.mode,
        operator=cmd.operator if cmd.mode == "direct" else None,
        customer=cmd.customer,
        description=cmd.description,
        callback_url=cmd.callback_url,
        external_merchant_id=cmd.external_merchant_id,
        metadata=cmd.metadata,
        provider=provider,
        otp_attempts_left=otp_attempts(status),
        expires_in_seconds=cmd.expires_in_seconds * deps.policy.expiry_time_scale,
    )
    async with deps.open_uow() as uow:
        payment = await uow.add(new, cmd.message_id)
        if payment is None:
            return await _same_request_again(uow, cmd, deps)
        with bound_context(payment_id=payment.id):
            await _emit(uow, deps, "collect.payment.created", payment, cmd.correlation_id)
            if provider is not None:
                await _initiate(uow, payment, cmd.correlation_id)
            log.info("payment_created", status=payment.status.value, provider=provider)
    return Reply(payment=deps.view(payment), created=True)


def _provider_for(cmd: CreatePayment, deps: Dependencies) -> str:
    provider = route(
        deps.policy.routes, cmd.environment, cmd.country, cmd.operator, cmd.currency, cmd.mode
    )
    if provider is None:
        raise OperatorUnavailable(f"No provider carries {cmd.operator} in {cmd.country} yet.")
    return provider


async def _same_request_again(uow: UnitOfWork, cmd: CreatePayment, deps: Dependencies) -> Reply:
    payment = await uow.by_reference(cmd.merchant_id, cmd.environment, cmd.reference)
    assert payment is not None, "a reference conflict names a payment"
    if payment.idempotency_key == cmd.idempotency_key:
        # The same request again (a gateway retry): answer with the payment it made.
        return Reply(payment=deps.view(payment), created=False)
    raise ReferenceAlreadyExists(f"A payment with reference '{cmd.reference}' already exists.")


async def get_payment(cmd: GetPayment, deps: Dependencies) -> Reply:
    async with deps.open_uow(transactional=False) as uow:
        payment = await _find(uow, cmd)
    if cmd.sync and payment.is_open and payment.provider:
        payment = await _sync(payment, cmd, deps)
    return Reply(payment=deps.view(payment))


async def _sync(payment: Payment, cmd: Message, deps: Dependencies) -> Payment:
    assert payment.provider is not None
    request = SyncStatus(
        correlation_id=cmd.correlation_id,
        payment_id=payment.id,
        merchant_id=payment.merchant_id,
        environment=payment.environment,
        provider=payment.provider,
    )
    try:
        update = await deps.call_connector(payment.provider, request)
    except (RpcTimeout, RpcUnavailable) as exc:
        log.warning("status_sync_unavailable", error=repr(exc))
        return payment
    return await on_provider_update(update, deps) or payment


async def confirm_payment(cmd: ConfirmPayment, deps: Dependencies) -> Reply:
    async with deps.open_uow(transactional=False) as uow:
        payment = await _find(uow, cmd)
    if payment.status is not PaymentStatus.AWAITING_OTP or payment.provider is None:
        raise PaymentNotAwaitingOtp(
            f"This payment is {payment.status.value}; an OTP is only accepted in awaiting_otp."
        )
    request = SubmitOtp(
        correlation_id=cmd.correlation_id,
        payment_id=payment.id,
        merchant_id=payment.merchant_id,
        environment=payment.environment,
        provider=payment.provider,
        otp=cmd.otp,
    )
    try:
        update = await deps.call_connector(payment.provider, request)
    except (RpcTimeout, RpcUnavailable):
        raise ProviderUnavailable(
            "The operator did not answer in time; retry the confirmation."
        ) from None
    if update.failure_code == "otp_not_ready":
        raise OtpNotReady(update.failure_message or "Retry shortly.")
    payment = await on_provider_update(update, deps) or payment
    _raise_for_wrong_otp(update)
    return Reply(payment=deps.view(payment))


def _raise_for_wrong_otp(update: ProviderPaymentUpdate) -> None:
    """The PSP counts the attempts (it was told OTP_ATTEMPTS); the update says what is left."""
    if update.failure_code == "otp_invalid":
        left = update.otp_attempts_left
        raise OtpInvalid(
            f"Wrong OTP; {left} attempt(s) left." if left is not None else "Wrong OTP."
        )
    if update.failure_code == "otp_attempts_exceeded":
        raise OtpAttemptsExceeded("Too many wrong OTPs: the payment has failed.")


async def cancel_payment(cmd: CancelPayment, deps: Dependencies) -> Reply:
    async with deps.open_uow() as uow:
        payment = await _find(uow, cmd, lock=True)
        cancelled = {"failure_code": "cancelled_by_merchant", "failure_message": cmd.reason}
        change = payment.apply(Trigger.MERCHANT_CANCEL, cancelled)
        if isinstance(change, Refusal):
            raise PaymentNotCancellable(
                f"This payment is {payment.status.value} and can no longer be cancelled."
            )
        payment = await _save(uow, deps, change, "merchant_cancel", cmd)
    return Reply(payment=deps.view(payment))


async def select_operator(cmd: SelectOperator, deps: Dependencies) -> Reply:
    """The hosted page's customer chose how to pay: route, and start the push."""
    async with deps.open_uow() as uow:
        payment = await _find(uow, cmd, lock=True)
        provider = route(
            deps.policy.routes,
            payment.environment,
            payment.country,
            cmd.operator,
            payment.currency,
            payment.mode,
        )
        if provider is None:
            raise OperatorUnavailable(f"{cmd.operator} is not available yet.")
        otp = _otp_operator(payment.country, cmd.operator)
        changes: dict[str, Any] = {
            "operator": cmd.operator,
            "customer": {**(payment.customer or {}), "phone": cmd.phone},
            "provider": provider,
        }
        if otp:
            changes["otp_attempts_left"] = OTP_ATTEMPTS
        change = payment.apply(Trigger.OPERATOR_SELECTED, changes)
        if isinstance(change, Refusal):
            raise PaymentNotAwaitingPayment(
                f"This payment is {payment.status.value}; the customer can no longer choose."
            )
        payment = await _save(uow, deps, change, "operator_selected", cmd)
        if otp and isinstance(then := payment.apply(Trigger.PROVIDER_AWAITING_OTP), PaymentChange):
            payment = await _save(uow, deps, then, "otp_operator", cmd)
        await _initiate(uow, payment, cmd.correlation_id)
    return Reply(payment=deps.view(payment))


async def refund_payment(cmd: RefundPayment, deps: Dependencies) -> Reply:
    """Check, hold the amount at the ledger, then re-check and record under the lock.

    No lock is held across the ledger's request: the hold serializes refunds per merchant
    balance there; the payment's lock guards only the re-check and the insert.
    """
    async with deps.open_uow(transactional=False) as uow:
        payment = await _find(uow, cmd)
        if existing := await _refund_by_key(uow, payment, cmd):
            return existing
        amount = payment.refundable(await uow.pending_refunds(payment.id), cmd.amount)
    refund_id = refund_id_for(payment.id, cmd.idempotency_key) or new_id()
    await _hold_at_ledger(cmd, payment, refund_id, amount, deps)
    refused: CommandRefused | None = None
    async with deps.open_uow() as uow:
        payment = await _find(uow, cmd, lock=True)
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
    cmd: RefundPayment, payment: Payment, refund_id: Any, amount: int, deps: Dependencies
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
    uow: UnitOfWork, cmd: RefundPayment, payment: Payment, refund_id: Any, deps: Dependencies
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
    uow: UnitOfWork, cmd: RefundPayment, payment: Payment, refund_id: Any, amount: int
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


# ---------------------------------------------------------------- provider updates


async def on_provider_update(update: ProviderPaymentUpdate, deps: Dependencies) -> Payment | None:
    """Apply a connector's report once (inbox); returns the payment as it now stands."""
    async with deps.open_uow() as uow:
        payment, first_time = await uow.claim_and_lock(
            update.payment_id, update.message_id, CONSUMER
        )
        if payment is None:
            # Never silently dropped: the consumer nacks (the claim rolls back with the
            # transaction) and the DLQ keeps it.
            raise LookupError(f"provider update for unknown payment {update.payment_id}")
        if not first_time:
            return payment
        change = payment.apply(provider_trigger(update.status), reported_changes(update))
        if isinstance(change, Refusal):
            log.warning(
                "provider_update_ignored",
                status=payment.status.value,
                reported=update.status,
                reason=change.reason,
            )
            return payment
        return await _save(uow, deps, change, f"provider:{update.provider}", update)


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
    if update.checkout_url:
        changes["provider_checkout_url"] = update.checkout_url
    return changes


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
        await _emit_refund(uow, deps, payment, refund, update.correlation_id)
        log.info("refund_settled", refund_id=str(refund.id), status=status.value)


async def _count_refunded(
    uow: UnitOfWork, deps: Dependencies, payment: Payment, refund: Refund, cause: Message
) -> Payment:
    """The refund that brings the refunded amount to the full amount refunds the payment."""
    payment = await uow.add_refunded(payment.id, refund.amount)
    if payment.is_fully_refunded():
        change = payment.apply(Trigger.FULLY_REFUNDED)
        if isinstance(change, PaymentChange):
            payment = await _save(uow, deps, change, "fully_refunded", cause)
    return payment


# ---------------------------------------------------------------- expiry


async def expire_due(deps: Dependencies, batch: int = 100) -> int:
    """Expire open payments past their deadline; returns how many were expired."""
    async with deps.open_uow() as uow:
        payments = await uow.due_for_expiry(batch)
        for payment in payments:
            with bound_context(payment_id=payment.id):
                change = payment.apply(Trigger.EXPIRE, EXPIRED_FAILURE)
                if isinstance(change, PaymentChange):
                    await _save(uow, deps, change, "expired", None)
                log.info("payment_expired")
    return len(payments)


# ---------------------------------------------------------------- reconciliation door


async def settled_movements(query: SettledMovementsQuery, deps: Dependencies) -> QueryReply:
    """What the orchestrator says was collected and paid out (the ledger reconciles)."""
    async with deps.open_uow(transactional=False) as uow:
        movements = await uow.settled_movements(query)
    return QueryReply(data={"movements": [m.model_dump(mode="json") for m in movements]})


# ---------------------------------------------------------------- shared steps


async def _find(uow: UnitOfWork, cmd: PaymentCommand, *, lock: bool = False) -> Payment:
    """The payment a merchant's command names (by reference or id), or PaymentNotFound."""
    payment = await uow.find(cmd.merchant_id, cmd.environment, cmd.reference_or_id, lock=lock)
    if payment is None:
        raise PaymentNotFound(cmd.reference_or_id)
    return payment


async def _save(
    uow: UnitOfWork,
    deps: Dependencies,
    change: PaymentChange,
    reason: str,
    cause: Message | None,
) -> Payment:
    """Persist a decided change with the messages its transition names."""
    if not change.needs_write:
        return change.before
    payment = await uow.save(change, reason, cause.message_id if cause else None)
    transition = change.transition
    if not transition.changed:
        return payment
    correlation_id = cause.correlation_id if cause is not None else ""
    if transition.event is not None:
        await _emit(
            uow,
            deps,
            transition.event,
            payment,
            correlation_id,
            late_success=transition.late_success,
        )
    if transition.late_success:
        log.warning("late_success_recorded", previous=transition.previous.value)
    if transition.cancel_at_provider and payment.provider:
        cancel = CancelAtProvider(
            correlation_id=correlation_id,
            payment_id=payment.id,
            merchant_id=payment.merchant_id,
            environment=payment.environment,
            provider=payment.provider,
        )
        await uow.publish(COMMANDS, connector_key(payment.provider), cancel)
    return payment


async def _emit(
    uow: UnitOfWork,
    deps: Dependencies,
    event_type: str,
    payment: Payment,
    correlation_id: str,
    *,
    late_success: bool = False,
) -> None:
    event = PaymentEvent(
        type=event_type,  # type: ignore[arg-type]
        correlation_id=correlation_id,
        merchant_id=payment.merchant_id,
        environment=payment.environment,
        provider=payment.provider,
        callback_url=payment.callback_url,
        payment=deps.view(payment),
        late_success=late_success,
        fee_minor=payment.fee_minor,
    )
    await uow.publish(EVENTS, event_type, event)


async def _emit_refund(
    uow: UnitOfWork, deps: Dependencies, payment: Payment, refund: Refund, correlation_id: str
) -> None:
    event_type = f"collect.refund.{refund.status.value}"
    event = RefundEvent(
        type=event_type,  # type: ignore[arg-type]
        correlation_id=correlation_id,
        merchant_id=payment.merchant_id,
        environment=payment.environment,
        provider=payment.provider,
        callback_url=payment.callback_url,
        payment=deps.view(payment),
        refund=refund_view(refund, payment.reference),
    )
    await uow.publish(EVENTS, event_type, event)


async def _initiate(uow: UnitOfWork, payment: Payment, correlation_id: str) -> None:
    assert payment.provider is not None
    customer = payment.customer or {}
    initiate = InitiatePayment(
        correlation_id=correlation_id,
        payment_id=payment.id,
        merchant_id=payment.merchant_id,
        environment=payment.environment,
        provider=payment.provider,
        reference=payment.reference,
        amount=payment.amount,
        currency=payment.currency,
        country=payment.country,
        operator=payment.operator,
        phone=customer.get("phone"),
        customer=customer or None,
        description=payment.description,
        expires_at=payment.expires_at,
    )
    await uow.publish(COMMANDS, connector_key(payment.provider), initiate)


def _otp_operator(country: str, operator: str | None) -> bool:
    found = catalog.find_operator(country, operator or "")
    return bool(found and found.otp_required)


# ---------------------------------------------------------------- routing

CommandHandler = Callable[[Any, Dependencies], Awaitable[Reply | QueryReply]]
EventHandler = Callable[[Any, Dependencies], Awaitable[Any]]

COMMAND_HANDLERS: dict[type, CommandHandler] = {
    CreatePayment: create_payment,
    GetPayment: get_payment,
    ConfirmPayment: confirm_payment,
    CancelPayment: cancel_payment,
    RefundPayment: refund_payment,
    SelectOperator: select_operator,
    SettledMovementsQuery: settled_movements,
}
EVENT_HANDLERS: dict[type, EventHandler] = {
    ProviderPaymentUpdate: on_provider_update,
    ProviderRefundUpdate: on_refund_update,
}


async def handle_command(command: Message, deps: Dependencies) -> Reply | QueryReply:
    """A command's reply; a refusal becomes an error reply (the gateway picks the HTTP status)."""
    try:
        return await COMMAND_HANDLERS[type(command)](command, deps)
    except CommandRefused as refused:
        return Reply(error=error_body(refused))


async def handle_event(event: Message, deps: Dependencies) -> None:
    await EVENT_HANDLERS[type(event)](event, deps)


def error_body(refused: CommandRefused) -> ErrorBody:
    return ErrorBody(
        type="api_error" if refused.server_side else "invalid_request_error",
        code=refused.code,
        message=refused.message,
        param=refused.param,
    )
