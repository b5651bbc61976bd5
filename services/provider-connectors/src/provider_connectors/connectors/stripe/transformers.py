"""Stripe Checkout wire models and the single Stripe -> FluxPay status map (pure).

A session is `open` (the customer may still pay, even after a declined card: Checkout
lets them retry), `complete` (`payment_status` `paid`, or `unpaid` while an asynchronous
method settles) or `expired` (never paid: the last card error, if any, says why).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from provider_connectors.connectors.stripe.forms import to_our_minor, to_stripe_amount
from provider_connectors.domain.model import Attempt, ProviderResult, RefundResult

# Stripe accepts a Checkout expiry between 30 minutes and 24 hours after creation.
MIN_CHECKOUT_LIFETIME = timedelta(minutes=31)
MAX_CHECKOUT_LIFETIME = timedelta(hours=23, minutes=59)
SESSION_EXPAND = ("payment_intent", "payment_intent.latest_charge.balance_transaction")


def checkout_expiry(attempt: Attempt) -> datetime:
    """Deterministic (from the attempt), so a retried creation sends identical params."""
    earliest = attempt.created_at + MIN_CHECKOUT_LIFETIME
    latest = attempt.created_at + MAX_CHECKOUT_LIFETIME
    return min(max(attempt.expires_at or earliest, earliest), latest)


def return_url(template: str, attempt: Attempt) -> str:
    """Where Checkout sends the card holder back: the payment's own page, which shows its
    outcome (`{payment_id}` in the setting; Stripe's `{CHECKOUT_SESSION_ID}` stays for it)."""
    return template.replace("{payment_id}", str(attempt.payment_id))


def session_params(attempt: Attempt, success_url: str, cancel_url: str) -> dict[str, Any]:
    metadata = {
        "payment_id": str(attempt.payment_id),
        "reference": attempt.reference,
        "merchant_id": str(attempt.merchant_id),
        "customer_phone": attempt.phone,
    }
    return {
        "mode": "payment",
        "client_reference_id": str(attempt.payment_id),
        "success_url": success_url,
        "cancel_url": cancel_url,
        "expires_at": int(checkout_expiry(attempt).timestamp()),
        "customer_email": attempt.customer_email,
        "payment_method_types": ["card"],
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": attempt.currency.lower(),
                    "unit_amount": to_stripe_amount(attempt.amount, attempt.currency),
                    "product_data": {"name": attempt.description or attempt.reference},
                },
            }
        ],
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
    }


def refund_params(attempt: Attempt, refund_id: str, amount: int, intent: str) -> dict[str, Any]:
    return {
        "payment_intent": intent,
        "amount": to_stripe_amount(amount, attempt.currency),
        "reason": "requested_by_customer",
        "metadata": {"refund_id": refund_id, "payment_id": str(attempt.payment_id)},
    }


def session_result(session: Mapping[str, Any], cancel_requested: bool = False) -> ProviderResult:
    """A Checkout Session as our result; an expired one we asked to expire is a cancel."""
    intent = _object(session.get("payment_intent"))
    common: dict[str, Any] = {
        "psp_reference": session.get("id"),
        "checkout_url": session.get("url"),
        "data": _bookkeeping(session, intent),
    }
    status, paid = session.get("status"), session.get("payment_status") == "paid"
    if paid or intent.get("status") == "succeeded":
        return ProviderResult(status="completed", **common, **_amounts(session, intent))
    if status == "expired" and cancel_requested:
        return ProviderResult(
            status="cancelled",
            failure_code="cancelled",
            failure_message="The payment was cancelled before the card was charged.",
            **common,
        )
    if status == "expired":
        return ProviderResult(status="failed", **common, **_expiry_failure(intent))
    if status == "complete" or intent.get("status") == "processing":
        return ProviderResult(status="processing", **common)
    if status == "open":
        return ProviderResult(status="awaiting_payment", **common)
    return ProviderResult(status=None, **common)


def refund_result(refund: Mapping[str, Any]) -> RefundResult:
    status = refund.get("status")
    if status == "succeeded":
        return RefundResult(status="completed", psp_reference=refund.get("id"))
    if status in ("failed", "canceled"):
        reason = str(refund.get("failure_reason") or "refund_failed")
        return RefundResult(
            status="failed",
            psp_reference=refund.get("id"),
            failure_code=reason,
            failure_message=f"Stripe could not refund: {reason.replace('_', ' ')}.",
        )
    return RefundResult(status="pending", psp_reference=refund.get("id"))


def error_of(body: Mapping[str, Any]) -> tuple[str, str]:
    error = _object(body.get("error"))
    code = str(
        error.get("decline_code") or error.get("code") or error.get("type") or "stripe_error"
    )
    return code, str(error.get("message") or "Stripe refused the request.")


def _object(value: Any) -> Mapping[str, Any]:
    """An expanded Stripe object, or an empty one when only its id came back."""
    return value if isinstance(value, Mapping) else {}


def _amounts(session: Mapping[str, Any], intent: Mapping[str, Any]) -> dict[str, Any]:
    currency = str(session.get("currency") or intent.get("currency") or "")
    total = session.get("amount_total") or intent.get("amount_received")
    charge = _object(intent.get("latest_charge"))
    fee = _object(charge.get("balance_transaction")).get("fee")
    return {
        "charged_amount_minor": to_our_minor(int(total), currency) if total is not None else None,
        "fee_minor": to_our_minor(int(fee), currency) if fee is not None else None,
    }


def _expiry_failure(intent: Mapping[str, Any]) -> dict[str, Any]:
    error = _object(intent.get("last_payment_error"))
    if error:
        code = str(error.get("decline_code") or error.get("code") or "card_declined")
        return {"failure_code": code, "failure_message": str(error.get("message") or code)}
    return {
        "failure_code": "customer_timeout",
        "failure_message": "The customer did not pay before the checkout expired.",
    }


def _bookkeeping(session: Mapping[str, Any], intent: Mapping[str, Any]) -> dict[str, Any]:
    intent_id = intent.get("id") or session.get("payment_intent")
    kept = {"stripe_session_id": session.get("id"), "stripe_payment_intent": intent_id}
    return {k: v for k, v in kept.items() if isinstance(v, str) and v}
