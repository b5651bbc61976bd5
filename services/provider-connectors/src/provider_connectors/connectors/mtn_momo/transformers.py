"""MTN MoMo Open API wire models and the single MTN -> FluxPay status map (pure).

`GET /collection/v1_0/requesttopay/{X-Reference-Id}` answers `PENDING`, `SUCCESSFUL` or
`FAILED` (with a `reason`, a string or `{code, message}` depending on the version).
MTN reports no fees on a collection.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from provider_connectors.domain.model import Attempt, ProviderResult, RefundResult


def reference_id(our_id: uuid.UUID) -> str:
    """MTN's `X-Reference-Id` for one of our ids: MTN takes only a UUID v4, and a refund's id
    is a UUID v5 when the merchant sent an Idempotency-Key. The same bits with a v4's version
    and variant: a v4 id is unchanged, and a retry derives the same key (no double refund)."""
    return str(uuid.UUID(int=our_id.int, version=4))


# MTN's failure reasons, in the words a merchant understands.
_REASONS: dict[str, tuple[str, str]] = {
    "APPROVAL_REJECTED": ("customer_declined", "The customer declined the payment."),
    "NOT_ENOUGH_FUNDS": ("insufficient_funds", "The customer's balance is insufficient."),
    "EXPIRED": ("customer_timeout", "The customer did not approve the payment in time."),
    "PAYER_NOT_FOUND": ("payer_not_found", "No MTN MoMo wallet exists for this number."),
    "PAYER_LIMIT_REACHED": ("payer_limit_reached", "The customer's wallet limit is reached."),
    "PAYEE_NOT_ALLOWED_TO_RECEIVE": ("provider_rejected", "MTN refused the collection."),
    "NOT_ALLOWED": ("provider_rejected", "MTN refused the collection."),
    "NOT_ALLOWED_TARGET_ENVIRONMENT": ("provider_rejected", "Wrong MTN target environment."),
    "INVALID_CALLBACK_URL_HOST": ("provider_rejected", "MTN refused the callback URL."),
    "INVALID_CURRENCY": ("currency_not_supported", "MTN does not accept this currency."),
    "TRANSACTION_CANCELED": ("cancelled", "The transaction was cancelled at MTN."),
    "COULD_NOT_PERFORM_TRANSACTION": ("provider_error", "MTN could not perform the payment."),
    "INTERNAL_PROCESSING_ERROR": ("provider_error", "MTN could not process the payment."),
    "SERVICE_UNAVAILABLE": ("provider_error", "MTN was unavailable."),
}


def party_id(phone: str | None) -> str:
    """MSISDN as MTN wants it: digits only, country code included, no '+'."""
    return re.sub(r"\D", "", phone or "")


def request_to_pay(attempt: Attempt) -> dict[str, Any]:
    return {
        "amount": str(attempt.amount),
        "currency": attempt.currency,
        "externalId": str(attempt.payment_id),
        "payer": {"partyIdType": "MSISDN", "partyId": party_id(attempt.phone)},
        "payerMessage": (attempt.description or f"Payment {attempt.reference}")[:160],
        "payeeNote": attempt.reference[:160],
    }


def refund_request(attempt: Attempt, refund_id: str, amount: int) -> dict[str, Any]:
    return {
        "amount": str(amount),
        "currency": attempt.currency,
        "externalId": refund_id,
        "payerMessage": f"Refund {attempt.reference}"[:160],
        "payeeNote": f"Refund {attempt.reference}"[:160],
        "referenceIdToRefund": attempt.data["reference_id"],
    }


def reason_of(body: Mapping[str, Any]) -> str:
    reason = body.get("reason")
    if isinstance(reason, Mapping):
        reason = reason.get("code")
    return str(reason or "").upper()


def collection_result(body: Mapping[str, Any]) -> ProviderResult:
    status = str(body.get("status") or "").upper()
    data = {"mtn_financial_transaction_id": body.get("financialTransactionId")}
    data = {k: v for k, v in data.items() if v}
    match status:
        case "SUCCESSFUL":
            return ProviderResult(status="completed", data=data)
        case "FAILED" | "REJECTED" | "TIMEOUT":
            code, message = failure_of(reason_of(body) or status)
            return ProviderResult(
                status="failed", failure_code=code, failure_message=message, data=data
            )
        case "PENDING" | "CREATED" | "ONGOING":
            return ProviderResult(status="processing", data=data)
        case _:
            return ProviderResult(status=None)


def failure_of(reason: str) -> tuple[str, str]:
    if reason == "TIMEOUT":
        reason = "EXPIRED"
    if reason == "REJECTED":
        reason = "APPROVAL_REJECTED"
    return _REASONS.get(reason, (reason.lower() or "payment_failed", "MTN refused the payment."))


def refund_result(body: Mapping[str, Any]) -> RefundResult:
    status = str(body.get("status") or "").upper()
    psp_reference = body.get("financialTransactionId")
    if status == "SUCCESSFUL":
        return RefundResult(status="completed", psp_reference=psp_reference)
    if status in ("FAILED", "REJECTED", "TIMEOUT"):
        code, message = failure_of(reason_of(body) or status)
        return RefundResult(status="failed", failure_code=code, failure_message=message)
    return RefundResult(status="pending")


def rejection(status_code: int, body: Mapping[str, Any]) -> ProviderResult:
    """A definitive 4xx on requesttopay (never 409: that one means "already accepted")."""
    code = str(body.get("code") or "provider_rejected").lower()
    message = body.get("message") or f"MTN MoMo refused the payment ({status_code})."
    return ProviderResult(status="failed", failure_code=code, failure_message=str(message))
