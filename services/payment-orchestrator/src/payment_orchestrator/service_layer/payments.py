"""The merchant's payment commands (request/reply): create, read (with a status sync),
confirm an OTP, cancel, and the hosted page's operator choice. No unit of work stays open
across a request to a connector."""

from __future__ import annotations

from typing import Any

from fluxpay_common.ids import new_id
from fluxpay_common.logging import bound_context, get_logger
from fluxpay_common.messages import (
    CancelPayment,
    ConfirmPayment,
    CreatePayment,
    GetPayment,
    Message,
    ProviderPaymentUpdate,
    Reply,
    SelectOperator,
    SubmitOtp,
    SyncStatus,
)
from fluxpay_common.metrics import payment_announced
from fluxpay_common.rpc import RpcTimeout, RpcUnavailable
from payment_orchestrator.domain.errors import (
    OperatorUnavailable,
    OtpAttemptsExceeded,
    OtpInvalid,
    OtpNotReady,
    PaymentNotAwaitingOtp,
    PaymentNotAwaitingPayment,
    PaymentNotCancellable,
    ProviderUnavailable,
    ReferenceAlreadyExists,
)
from payment_orchestrator.domain.payment import (
    OTP_ATTEMPTS,
    NewPayment,
    Payment,
    PaymentChange,
    initial_status,
    otp_attempts,
)
from payment_orchestrator.domain.routing import route
from payment_orchestrator.domain.state_machine import (
    Refusal,
    Trigger,
)
from payment_orchestrator.domain.status import PaymentStatus
from payment_orchestrator.service_layer.dependencies import Dependencies
from payment_orchestrator.service_layer.effects import (
    find_payment,
    initiate_at_provider,
    initiate_command,
    initiate_message,
    is_otp_operator,
    payment_event_messages,
    save_change,
)
from payment_orchestrator.service_layer.ports import (
    UnitOfWork,
)
from payment_orchestrator.service_layer.updates import on_provider_update

log = get_logger(__name__)
CREATED = "collect.payment.created"


async def create_payment(cmd: CreatePayment, deps: Dependencies) -> Reply:
    provider = _provider_for(cmd, deps) if cmd.mode == "direct" else None
    status = initial_status(cmd.mode, is_otp_operator(cmd.country, cmd.operator))
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
    # One statement (the payment, its transition, its event and the provider's command):
    # atomic by itself, so no transaction around it.
    async with deps.open_uow(transactional=False) as uow:
        stored = new.stored_at(uow.now())
        messages = payment_event_messages(deps, CREATED, stored, cmd.correlation_id)
        if provider is not None:
            messages.append(initiate_message(stored, cmd.correlation_id))
        payment = await uow.add(stored, cmd.message_id, messages)
        if payment is None:
            return await _same_request_again(uow, cmd, deps)
    with bound_context(payment_id=payment.id):
        payment_announced(CREATED, payment.provider, payment.environment)
        log.info("payment_created", status=payment.status.value, provider=provider)
    return Reply(payment=deps.view(payment), created=True)


def _provider_for(cmd: CreatePayment, deps: Dependencies) -> str:
    needs_otp = is_otp_operator(cmd.country, cmd.operator)
    provider = route(
        deps.policy.routes,
        cmd.environment,
        cmd.country,
        cmd.operator,
        cmd.currency,
        cmd.mode,
        needs_otp=needs_otp,
    )
    if provider is None:
        raise _no_route(cmd.country, cmd.operator, needs_otp)
    return provider


def _no_route(country: str, operator: str | None, needs_otp: bool) -> OperatorUnavailable:
    """Why no provider takes the operator: an OTP operator needs a provider that checks the
    code, so `awaiting_otp` is never promised to a merchant when nobody would check it."""
    if needs_otp:
        return OperatorUnavailable(
            f"{operator} in {country} confirms payments by OTP, and no live provider offers"
            " an OTP confirmation yet: choose another operator."
        )
    return OperatorUnavailable(f"No provider carries {operator} in {country} yet.")


async def _same_request_again(uow: UnitOfWork, cmd: CreatePayment, deps: Dependencies) -> Reply:
    payment = await uow.by_reference(cmd.merchant_id, cmd.environment, cmd.reference)
    assert payment is not None, "a reference conflict names a payment"
    if payment.idempotency_key == cmd.idempotency_key:
        # The same request again (a gateway retry): answer with the payment it made.
        return Reply(payment=deps.view(payment), created=False)
    raise ReferenceAlreadyExists(f"A payment with reference '{cmd.reference}' already exists.")


async def get_payment(cmd: GetPayment, deps: Dependencies) -> Reply:
    async with deps.open_uow(transactional=False) as uow:
        payment = await find_payment(uow, cmd)
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
        initiate=initiate_command(payment, cmd.correlation_id),
    )
    try:
        update = await deps.call_connector(payment.provider, request)
    except (RpcTimeout, RpcUnavailable) as exc:
        log.warning("status_sync_unavailable", error=repr(exc))
        return payment
    if update.failure_code == "attempt_not_started":
        # The provider has no news of a payment it has not received: not a status to apply.
        log.info("status_sync_before_initiate")
        return payment
    return await on_provider_update(update, deps) or payment


async def confirm_payment(cmd: ConfirmPayment, deps: Dependencies) -> Reply:
    async with deps.open_uow(transactional=False) as uow:
        payment = await find_payment(uow, cmd)
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
        initiate=initiate_command(payment, cmd.correlation_id),
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
        payment = await find_payment(uow, cmd, lock=True)
        cancelled = {"failure_code": "cancelled_by_merchant", "failure_message": cmd.reason}
        change = payment.apply(Trigger.MERCHANT_CANCEL, cancelled)
        if isinstance(change, Refusal):
            raise PaymentNotCancellable(
                f"This payment is {payment.status.value} and can no longer be cancelled."
            )
        payment = await save_change(uow, deps, change, "merchant_cancel", cmd)
    return Reply(payment=deps.view(payment))


async def select_operator(cmd: SelectOperator, deps: Dependencies) -> Reply:
    """The hosted page's customer chose how to pay: route, and start the push."""
    async with deps.open_uow() as uow:
        payment = await find_payment(uow, cmd, lock=True)
        otp = is_otp_operator(payment.country, cmd.operator)
        provider = route(
            deps.policy.routes,
            payment.environment,
            payment.country,
            cmd.operator,
            payment.currency,
            payment.mode,
            needs_otp=otp,
        )
        if provider is None:
            raise _no_route(payment.country, cmd.operator, otp)
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
        payment = await save_change(uow, deps, change, "operator_selected", cmd)
        if otp and isinstance(then := payment.apply(Trigger.PROVIDER_AWAITING_OTP), PaymentChange):
            payment = await save_change(uow, deps, then, "otp_operator", cmd)
        await initiate_at_provider(uow, payment, cmd.correlation_id)
    return Reply(payment=deps.view(payment))
