"""IremboPay wire models and the single IremboPay -> FluxPay status map (pure).

Answers come in an envelope `{"success", "message", "data", "errors": [{"code", ...}]}`.
An invoice is `NEW` until `PAID`; it cannot be paid after `expiryAt`. A push that the
customer refuses leaves the invoice `NEW`: failures arrive as notifications only (the
seed's form: `status` in `failed`/`error`/`cancelled`/`timeout`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from provider_connectors.domain.model import Attempt, ProviderResult

PUSH_PROVIDERS = {"mtn": "MTN", "airtel": "AIRTEL"}
# An unpaid invoice is final once expired, give or take the two clocks.
EXPIRY_GRACE = timedelta(seconds=60)

# IremboPay error codes, in the words a merchant understands.
ERRORS: dict[str, tuple[str, str]] = {
    "INVOICE_EXPIRED": ("invoice_expired", "The IremboPay invoice expired before payment."),
    "BAD_PHONE_NUMBER": ("phone_invalid", "The phone number is not a valid Rwandan number."),
    "PHONE_NUMBER_MISSING": ("phone_invalid", "A phone number is required for this payment."),
    "PAYMENT_PROVIDER_ERROR": (
        "phone_operator_mismatch",
        "The phone number does not belong to the chosen operator.",
    ),
    "BAD_PAYMENT_PROVIDER": ("operator_not_supported", "IremboPay does not push to this operator."),
    "BAD_DATA": ("currency_not_supported", "IremboPay mobile-money pushes are in RWF only."),
    "INVOICE_ALREADY_IN_BATCH": ("provider_rejected", "The invoice is part of a batch."),
    "INVOICE_MISSING": ("provider_rejected", "IremboPay did not receive the invoice number."),
}

_REASONS = {
    "INSUFFICIENT_FUNDS": "The customer's balance is insufficient.",
    "APPROVAL_REJECTED": "The customer declined the payment.",
    "REJECTED": "The customer declined the payment.",
}

# Every payment status IremboPay names: its invoices' `paymentStatus` (NEW, PAID) and the
# seed's notification `status` values. Anything else is no news (and not recorded as seen).
_STATUSES: dict[str, tuple[str | None, str | None, str | None]] = {
    "new": (None, None, None),
    "pending": ("processing", None, None),
    "processing": ("processing", None, None),
    "paid": ("completed", None, None),
    "successful": ("completed", None, None),
    "completed": ("completed", None, None),
    "failed": ("failed", "payment_declined", "The payment failed at IremboPay."),
    "error": ("failed", "provider_error", "IremboPay reported an error."),
    "cancelled": ("cancelled", "cancelled", "The payment was cancelled."),
    "canceled": ("cancelled", "cancelled", "The payment was cancelled."),
    "timeout": ("failed", "customer_timeout", "The customer did not approve in time."),
    "expired": ("failed", "customer_timeout", "The invoice expired unpaid."),
}
INVOICE_NUMBER = "irembopay_invoice_number"


def is_known_status(status: str) -> bool:
    return status.lower() in _STATUSES


def national_phone(phone: str | None) -> str:
    """`+250788123456` -> `0788123456` (IremboPay's `07…` form)."""
    digits = re.sub(r"\D", "", phone or "")
    if digits.startswith("250"):
        digits = digits[3:]
    return digits if digits.startswith("0") else "0" + digits


def invoice_request(
    attempt: Attempt, account: str, product_code: str, language: str, expiry: datetime
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "transactionId": str(attempt.payment_id),
        "paymentAccountIdentifier": account,
        "paymentItems": [{"unitAmount": attempt.amount, "quantity": 1, "code": product_code}],
        "description": (attempt.description or f"Payment {attempt.reference}")[:200],
        "expiryAt": expiry.isoformat(timespec="milliseconds"),
        "language": language,
    }
    person = {
        "email": attempt.customer_email,
        "phoneNumber": national_phone(attempt.phone) if attempt.phone else None,
        "name": attempt.customer_name,
    }
    if any(person.values()):
        body["customer"] = {k: v for k, v in person.items() if v}
    return body


def push_request(attempt: Attempt, invoice_number: str) -> dict[str, Any] | None:
    """The mobile-money push, or None when the customer pays through the invoice link."""
    provider = PUSH_PROVIDERS.get((attempt.operator or "").lower())
    if provider is None:
        return None
    return {
        "accountIdentifier": national_phone(attempt.phone),
        "paymentProvider": provider,
        "invoiceNumber": invoice_number,
    }


def data_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    data = body.get("data")
    return data if isinstance(data, Mapping) else {}


def error_code(body: Mapping[str, Any]) -> str:
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        return str(errors[0].get("code") or "").upper()
    return str(body.get("code") or "").upper()


def rejection(status_code: int, body: Mapping[str, Any]) -> ProviderResult:
    code = error_code(body)
    ours, message = ERRORS.get(code, (code.lower() or "provider_rejected", ""))
    text = message or str(body.get("message") or f"IremboPay refused the payment ({status_code}).")
    return ProviderResult(status="failed", failure_code=ours, failure_message=text)


def invoice_result(invoice: Mapping[str, Any], now: datetime) -> ProviderResult:
    """An invoice as our result: PAID is success; NEW past its expiry is a timeout; the
    other statuses IremboPay names map like its notifications."""
    number = invoice.get("invoiceNumber")
    data = {
        INVOICE_NUMBER: str(number) if number else None,
        "irembopay_payment_reference": invoice.get("paymentReference"),
        "irembopay_payment_method": invoice.get("paymentMethod"),
    }
    common: dict[str, Any] = {
        "psp_reference": str(number) if number else None,
        "checkout_url": invoice.get("paymentLinkUrl"),
        "data": {k: v for k, v in data.items() if v},
    }
    status = str(invoice.get("paymentStatus") or "").lower()
    if status == "new" and _expired(invoice, now):
        return ProviderResult(
            status="failed",
            failure_code="customer_timeout",
            failure_message="The invoice expired unpaid.",
            **common,
        )
    return replace(notified_result(status, invoice.get("failureReason")), **common)


def _expired(invoice: Mapping[str, Any], now: datetime) -> bool:
    expiry = _parse_time(invoice.get("expiryAt"))
    return expiry is not None and now > expiry + EXPIRY_GRACE


def notified_result(status: str, failure_reason: object) -> ProviderResult:
    ours, code, message = _STATUSES.get(status.lower(), (None, None, None))
    if ours is None:
        return ProviderResult(status=None)
    if ours == "failed" and failure_reason and code != "customer_timeout":
        reason = str(failure_reason).upper()
        code, message = reason.lower(), _REASONS.get(reason, f"IremboPay refused: {reason}.")
    return ProviderResult(status=ours, failure_code=code, failure_message=message)  # type: ignore[arg-type]


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
