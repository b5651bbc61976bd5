"""Payments and refunds to the wire views the gateway renders (the seed's CollectPayment /
CollectRefund)."""

from __future__ import annotations

from fluxpay_common.fees import FeeSchedule, platform_fee
from fluxpay_common.messages import NEXT_ACTION_MESSAGES, NextAction, PaymentView, RefundView
from fluxpay_common.money import to_minor
from payment_orchestrator.domain.payment import Payment, Refund


def next_action(status: str, checkout_url: str | None) -> NextAction:
    if status == "awaiting_payment":
        kind = "redirect_to_checkout"
    elif status == "awaiting_otp":
        kind = "confirm_otp"
    elif status in ("pending", "processing"):
        kind = "await_customer_validation"
    else:
        return NextAction(type="none", message=NEXT_ACTION_MESSAGES["none"])
    return NextAction(
        type=kind,  # type: ignore[arg-type]
        message=NEXT_ACTION_MESSAGES[kind],
        checkout_url=checkout_url if kind == "redirect_to_checkout" else None,
    )


def payment_view(
    payment: Payment, checkout_base_url: str, fees: FeeSchedule | None = None
) -> PaymentView:
    amount_minor = to_minor(payment.amount)
    fee = (
        None
        if fees is None
        else platform_fee(fees, payment.merchant_id, payment.operator, amount_minor)
    )
    checkout_url = payment.provider_checkout_url or (
        f"{checkout_base_url}/{payment.id}" if payment.mode == "hosted" else None
    )
    return PaymentView(
        id=payment.id,
        reference=payment.reference,
        status=payment.status.value,
        amount=payment.amount,
        amount_minor=amount_minor,
        currency=payment.currency,
        country=payment.country,
        mode=payment.mode,
        operator=payment.operator,
        customer=payment.customer,
        next_action=next_action(payment.status, checkout_url),
        checkout_url=checkout_url,
        psp_reference=payment.psp_reference,
        expires_at=payment.expires_at,
        environment=payment.environment,
        created_at=payment.created_at,
        completed_at=payment.completed_at,
        description=payment.description,
        external_merchant_id=payment.external_merchant_id,
        metadata=payment.metadata or {},
        refunded_amount=payment.refunded_amount,
        failure_code=payment.failure_code,
        failure_message=payment.failure_message,
        platform_fee_minor=fee,
        net_amount_minor=None if fee is None else amount_minor - fee,
        provider=payment.provider,
    )


def refund_view(refund: Refund, payment_reference: str) -> RefundView:
    return RefundView(
        id=refund.id,
        payment_id=refund.payment_id,
        reference=payment_reference,
        status=refund.status.value,
        amount=refund.amount,
        currency=refund.currency,
        reason=refund.reason,
        metadata=refund.metadata or {},
        created_at=refund.created_at,
        failure_code=refund.failure_code,
        psp_reference=refund.psp_reference,
        failure_message=refund.failure_message,
    )
