"""The one status vocabulary of a payment and of a refund, and their classifiers.

The values are the wire contract's (`fluxpay_common.messages.PaymentStatus`); a unit test
ties the two. Every classifier lists every status (no wildcard): a new status is a type
error here until someone decides what it is.
"""

from __future__ import annotations

from enum import StrEnum
from typing import assert_never


class PaymentStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    AWAITING_OTP = "awaiting_otp"
    AWAITING_PAYMENT = "awaiting_payment"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REFUNDED = "refunded"


def is_terminal(status: PaymentStatus) -> bool:
    """No customer action or provider push can still move it towards completion."""
    match status:
        case (
            PaymentStatus.PENDING
            | PaymentStatus.PROCESSING
            | PaymentStatus.AWAITING_OTP
            | PaymentStatus.AWAITING_PAYMENT
        ):
            return False
        case (
            PaymentStatus.COMPLETED
            | PaymentStatus.FAILED
            | PaymentStatus.CANCELLED
            | PaymentStatus.EXPIRED
            | PaymentStatus.REFUNDED
        ):
            return True
        case _:
            assert_never(status)


def late_success_overrides(status: PaymentStatus) -> bool:
    """A PSP-confirmed success arriving now is late: money moved after we gave up on it."""
    match status:
        case PaymentStatus.FAILED | PaymentStatus.CANCELLED | PaymentStatus.EXPIRED:
            return True
        case (
            PaymentStatus.PENDING
            | PaymentStatus.PROCESSING
            | PaymentStatus.AWAITING_OTP
            | PaymentStatus.AWAITING_PAYMENT
            | PaymentStatus.COMPLETED
            | PaymentStatus.REFUNDED
        ):
            return False
        case _:
            assert_never(status)


def has_collected(status: PaymentStatus) -> bool:
    """The customer's money reached the PSP (a payment refunded later was still collected)."""
    match status:
        case PaymentStatus.COMPLETED | PaymentStatus.REFUNDED:
            return True
        case (
            PaymentStatus.PENDING
            | PaymentStatus.PROCESSING
            | PaymentStatus.AWAITING_OTP
            | PaymentStatus.AWAITING_PAYMENT
            | PaymentStatus.FAILED
            | PaymentStatus.CANCELLED
            | PaymentStatus.EXPIRED
        ):
            return False
        case _:
            assert_never(status)


TERMINAL = frozenset(s for s in PaymentStatus if is_terminal(s))
# Statuses from which the payment may still move money towards completion.
OPEN = frozenset(s for s in PaymentStatus if not is_terminal(s))
LATE_SUCCESS_FROM = frozenset(s for s in PaymentStatus if late_success_overrides(s))
COLLECTED = frozenset(s for s in PaymentStatus if has_collected(s))


class RefundStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


def is_settled(status: RefundStatus) -> bool:
    """The PSP has answered: the refund's outcome is final."""
    match status:
        case RefundStatus.PENDING:
            return False
        case RefundStatus.COMPLETED | RefundStatus.FAILED:
            return True
        case _:
            assert_never(status)
