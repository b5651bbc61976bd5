"""Novasend payin wire models and the single Novasend -> FluxPay status map (pure).

Truth, per the seed: a session's `status` (`processing`, `processed`, `expired`) only says
how far the session went; `processed` alone is not success. The nested `transaction`
(`completed`, `failed`, `pending`) is the settlement system's final word. A customer's
`confirmationStatus` of `declined` or `expired` ends the payment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provider_connectors.connectors.amounts import minor_of
from provider_connectors.domain.model import Attempt, ProviderResult, RefundResult

DEFAULT_CUSTOMER_NAME = "FluxPay customer"


def session_request(attempt: Attempt, account_id: str) -> dict[str, Any]:
    """`POST /v1/payin/sessions`; our payment id is the merchant-side unique reference."""
    return {
        "reference": str(attempt.payment_id),
        "accountId": account_id,
        "amount": attempt.amount,
        "msisdn": attempt.phone,
        "customerName": attempt.customer_name or DEFAULT_CUSTOMER_NAME,
        "country": attempt.country,
    }


def payout_request(attempt: Attempt, refund_id: str, amount: int) -> dict[str, Any]:
    """A refund is a payout to the paying wallet (`POST /v1/payout`), keyed by refund id."""
    return {
        "reference": refund_id,
        "amount": amount,
        "msisdn": attempt.phone,
        "country": attempt.country,
        "customerName": attempt.customer_name or DEFAULT_CUSTOMER_NAME,
    }


def payin_result(body: Mapping[str, Any]) -> ProviderResult:
    """A session or status answer as our result (`reference` is Novasend's own).

    `next_poll_at` is left to the connector (it knows the clock and the cadence).
    """
    settlement = _settlement(body)
    common: dict[str, Any] = {
        "psp_reference": body.get("reference") or None,
        "checkout_url": body.get("paymentUrl") or None,
        "data": _bookkeeping(body),
    }
    match settlement:
        case "completed":
            return ProviderResult(status="completed", **common, **_fees(body))
        case "failed":
            return ProviderResult(status="failed", **common, **_failure(body))
        case "expired":
            return ProviderResult(
                status="failed",
                failure_code="customer_timeout",
                failure_message="The customer did not confirm the payment in time.",
                **common,
            )
        case "declined":
            return ProviderResult(
                status="failed",
                failure_code="customer_declined",
                failure_message="The customer declined the payment.",
                **common,
            )
        case "awaiting_link":
            return ProviderResult(status="awaiting_payment", **common)
        case "processing":
            return ProviderResult(status="processing", **common)
        case _:
            # An unmodelled value: no news, the last known status stands.
            return ProviderResult(status=None, **common)


def _settlement(body: Mapping[str, Any]) -> str | None:
    transaction = body.get("transaction") or {}
    if isinstance(transaction, Mapping) and transaction.get("status") in ("completed", "failed"):
        return str(transaction["status"])
    if body.get("type") == "payin" and body.get("status") in ("completed", "failed"):
        return str(body["status"])  # a webhook carries the transaction object itself
    confirmation = body.get("confirmationStatus")
    if confirmation in ("declined", "expired"):
        return str(confirmation)
    if body.get("status") == "expired":
        return "expired"
    if body.get("failure"):
        return "failed"
    if body.get("status") in ("processing", "processed", "pending"):
        link_needed = body.get("confirmationRequired") and body.get("paymentUrl")
        awaiting = link_needed and confirmation in (None, "none", "pending")
        return "awaiting_link" if awaiting else "processing"
    return None


def _fees(body: Mapping[str, Any]) -> dict[str, Any]:
    transaction = body.get("transaction") or {}
    source = transaction if isinstance(transaction, Mapping) and transaction else body
    fee = source.get("fees", source.get("fee", body.get("fee", body.get("fees"))))
    charged = source.get("chargedAmount", body.get("chargedAmount"))
    return {"fee_minor": minor_of(fee), "charged_amount_minor": minor_of(charged)}


def _failure(body: Mapping[str, Any]) -> dict[str, Any]:
    failure = body.get("failure") or {}
    if not isinstance(failure, Mapping):
        failure = {"message": str(failure)}
    code = str(failure.get("code") or "payment_declined").lower()
    message = failure.get("message") or "The payment was refused by the provider."
    return {"failure_code": code, "failure_message": str(message)}


def _bookkeeping(body: Mapping[str, Any]) -> dict[str, Any]:
    transaction = body.get("transaction") or {}
    kept = {
        "novasend_session_status": body.get("status"),
        "novasend_confirmation_status": body.get("confirmationStatus"),
    }
    if isinstance(transaction, Mapping) and transaction.get("reference"):
        kept["novasend_transaction_reference"] = transaction["reference"]
    return {k: v for k, v in kept.items() if v is not None}


def payout_result(body: Mapping[str, Any]) -> RefundResult:
    transaction = body.get("transaction") or {}
    settled = transaction.get("status") if isinstance(transaction, Mapping) else None
    psp_reference = body.get("id")
    if settled == "failed" or body.get("failure") or body.get("status") == "expired":
        failure = _failure(body)
        return RefundResult(status="failed", psp_reference=psp_reference, **failure)
    if settled == "completed" or (
        body.get("status") == "processed" and body.get("confirmationStatus") in (None, "accepted")
    ):
        return RefundResult(status="completed", psp_reference=psp_reference)
    return RefundResult(status="pending", psp_reference=psp_reference)


def rejection(status_code: int, body: Mapping[str, Any]) -> ProviderResult:
    """A definitive 4xx on session creation: the merchant sees why, in clear words."""
    message = (
        body.get("message") or body.get("error") or f"Novasend refused the payment ({status_code})."
    )
    if isinstance(message, list):
        message = "; ".join(str(m) for m in message)
    code = str(body.get("code") or "provider_rejected").lower()
    return ProviderResult(status="failed", failure_code=code, failure_message=str(message))
