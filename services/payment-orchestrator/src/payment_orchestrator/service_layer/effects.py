"""Steps the handlers share: find a merchant's payment, persist a decided change with the
messages its transition names (events, provider commands), announce a payment or a refund."""

from __future__ import annotations

import uuid

from fluxpay_common import catalog
from fluxpay_common.logging import get_logger
from fluxpay_common.messages import (
    CancelAtProvider,
    InitiatePayment,
    Message,
    PaymentEvent,
    RefundEvent,
)
from fluxpay_common.metrics import payment_announced
from fluxpay_common.topology import (
    COMMANDS,
    EVENTS,
    GATEWAY_OUTCOMES,
    connector_key,
    gateway_payment_key,
    is_gateway_payment,
)
from payment_orchestrator.domain.errors import (
    PaymentNotFound,
)
from payment_orchestrator.domain.payment import (
    Payment,
    PaymentChange,
    Refund,
)
from payment_orchestrator.service_layer.dependencies import Dependencies, PaymentCommand
from payment_orchestrator.service_layer.ports import (
    Outgoing,
    UnitOfWork,
)
from payment_orchestrator.views import refund_view

log = get_logger(__name__)


async def find_payment(uow: UnitOfWork, cmd: PaymentCommand, *, lock: bool = False) -> Payment:
    """The payment a merchant's command names (by reference or id), or PaymentNotFound."""
    payment = await uow.find(cmd.merchant_id, cmd.environment, cmd.reference_or_id, lock=lock)
    if payment is None:
        raise PaymentNotFound(cmd.reference_or_id)
    return payment


async def save_change(
    uow: UnitOfWork,
    deps: Dependencies,
    change: PaymentChange,
    reason: str,
    cause: Message | None,
) -> Payment:
    """Persist a decided change with the messages its transition names, in one statement
    (the messages are built from the payment as the write stores it)."""
    if not change.needs_write:
        return change.before
    change = change.stored_at(uow.now())
    transition = change.transition
    correlation_id = cause.correlation_id if cause is not None else ""
    messages = _transition_messages(deps, change, correlation_id) if transition.changed else []
    payment = await uow.save(change, reason, cause.message_id if cause else None, messages)
    if transition.event is not None and transition.changed:
        payment_announced(transition.event, payment.provider, payment.environment)
    if transition.changed and transition.late_success:
        log.warning("late_success_recorded", previous=transition.previous.value)
    return payment


def _transition_messages(
    deps: Dependencies, change: PaymentChange, correlation_id: str
) -> list[Outgoing]:
    payment, transition = change.after, change.transition
    messages: list[Outgoing] = []
    if transition.event is not None:
        messages += payment_event_messages(
            deps, transition.event, payment, correlation_id, late_success=transition.late_success
        )
    if transition.cancel_at_provider and payment.provider:
        cancel = CancelAtProvider(
            correlation_id=correlation_id,
            payment_id=payment.id,
            merchant_id=payment.merchant_id,
            environment=payment.environment,
            provider=payment.provider,
        )
        messages.append((COMMANDS, connector_key(payment.provider), cancel))
    return messages


async def emit_payment_event(
    uow: UnitOfWork,
    deps: Dependencies,
    event_type: str,
    payment: Payment,
    correlation_id: str,
    *,
    late_success: bool = False,
) -> None:
    for exchange, key, message in payment_event_messages(
        deps, event_type, payment, correlation_id, late_success=late_success
    ):
        await uow.publish(exchange, key, message)
    payment_announced(event_type, payment.provider, payment.environment)


def payment_event_messages(
    deps: Dependencies,
    event_type: str,
    payment: Payment,
    correlation_id: str,
    *,
    late_success: bool = False,
) -> list[Outgoing]:
    """The payment's event, and the gateway's copy of a link's or a due's outcome."""
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
        charged_amount_minor=payment.charged_amount_minor,
    )
    messages: list[Outgoing] = [(EVENTS, event_type, event)]
    outcome = event_type.removeprefix("collect.payment.")
    if outcome in GATEWAY_OUTCOMES and is_gateway_payment(payment.metadata):
        # A payment link's or a due's payment: the gateway hears its outcome on a key of its
        # own (and no other payment's). Its own message id, derived: the outbox holds one row
        # per id, and a republished copy is still the same message to the gateway's inbox.
        copy = event.model_copy(update={"message_id": uuid.uuid5(event.message_id, "gateway")})
        messages.append((EVENTS, gateway_payment_key(outcome), copy))
    return messages


async def emit_refund_event(
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


async def initiate_at_provider(uow: UnitOfWork, payment: Payment, correlation_id: str) -> None:
    await uow.publish(*initiate_message(payment, correlation_id))


def initiate_message(payment: Payment, correlation_id: str) -> Outgoing:
    assert payment.provider is not None
    return (COMMANDS, connector_key(payment.provider), initiate_command(payment, correlation_id))


def initiate_command(payment: Payment, correlation_id: str) -> InitiatePayment:
    """The payment's one InitiatePayment. Requests to the connector (OTP, sync) carry a copy,
    since they may overtake the outbox's: its id is derived from the payment, so the
    connector's inbox takes whichever copy arrives first and dedups the other."""
    assert payment.provider is not None
    customer = payment.customer or {}
    return InitiatePayment(
        message_id=uuid.uuid5(payment.id, "provider.initiate"),
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


def is_otp_operator(country: str, operator: str | None) -> bool:
    found = catalog.find_operator(country, operator or "")
    return bool(found and found.otp_required)
