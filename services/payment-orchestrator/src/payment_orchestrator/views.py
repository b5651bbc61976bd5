"""Rows to the wire views the gateway renders (the seed's CollectPayment / CollectRefund)."""

from __future__ import annotations

from typing import Any

import asyncpg

from fluxpay_common.fees import FeeSchedule, platform_fee
from fluxpay_common.messages import NextAction, PaymentView, RefundView
from fluxpay_common.money import to_minor

_MESSAGES = {
    "await_customer_validation": "Le client doit valider le paiement sur son téléphone.",
    "confirm_otp": "Saisissez le code OTP reçu par le client (POST /confirm).",
    "redirect_to_checkout": "Redirigez le client vers la page de paiement.",
}


def next_action(status: str, checkout_url: str | None) -> NextAction:
    if status == "awaiting_payment":
        kind = "redirect_to_checkout"
    elif status == "awaiting_otp":
        kind = "confirm_otp"
    elif status in ("pending", "processing"):
        kind = "await_customer_validation"
    else:
        return NextAction(type="none")
    return NextAction(
        type=kind,  # type: ignore[arg-type]
        message=_MESSAGES[kind],
        checkout_url=checkout_url if kind == "redirect_to_checkout" else None,
    )


def payment_view(
    row: asyncpg.Record | dict[str, Any], checkout_base_url: str, fees: FeeSchedule | None = None
) -> PaymentView:
    amount_minor = to_minor(row["amount"])
    fee = (
        None
        if fees is None
        else platform_fee(fees, row["merchant_id"], row["operator"], amount_minor)
    )
    checkout_url = row.get("provider_checkout_url") or (
        f"{checkout_base_url}/{row['id']}" if row["mode"] == "hosted" else None
    )
    return PaymentView(
        id=row["id"],
        reference=row["reference"],
        status=row["status"],
        amount=row["amount"],
        amount_minor=amount_minor,
        currency=row["currency"],
        country=row["country"],
        mode=row["mode"],
        operator=row["operator"],
        customer=row["customer"],
        next_action=next_action(row["status"], checkout_url),
        checkout_url=checkout_url,
        psp_reference=row["psp_reference"],
        expires_at=row["expires_at"],
        environment=row["environment"],
        created_at=row["created_at"],
        completed_at=row["completed_at"],
        description=row["description"],
        external_merchant_id=row["external_merchant_id"],
        metadata=row["metadata"] or {},
        refunded_amount=row["refunded_amount"],
        failure_code=row["failure_code"],
        failure_message=row["failure_message"],
        platform_fee_minor=fee,
        net_amount_minor=None if fee is None else amount_minor - fee,
    )


def refund_view(row: asyncpg.Record, payment_reference: str) -> RefundView:
    return RefundView(
        id=row["id"],
        payment_id=row["payment_id"],
        reference=payment_reference,
        status=row["status"],
        amount=row["amount"],
        currency=row["currency"],
        reason=row["reason"],
        metadata=row["metadata"] or {},
        created_at=row["created_at"],
        failure_code=row["failure_code"],
        psp_reference=row["psp_reference"],
        failure_message=row["failure_message"],
    )
