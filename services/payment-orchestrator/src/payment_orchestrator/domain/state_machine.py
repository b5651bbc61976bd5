"""The payment lifecycle as a pure function: (status, trigger) -> transition or refusal.

No I/O here. The orchestrator loads a payment under a row lock, asks `decide`, and writes
the new status, the events and the provider commands the transition names, in one
transaction.

    pending ──> processing ─────────────┬─> completed ──> refunded (full refund)
       │    └─> awaiting_otp ─(otp)─────┤
       └──> awaiting_payment (hosted) ──┘   failed | cancelled | expired  (terminal)

A PSP-confirmed success that arrives after a local expiry, cancel or failure is never
dropped: money moved, so the payment becomes `completed` with `late_success`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, assert_never

from fluxpay_common.messages import ProviderPaymentStatus
from payment_orchestrator.domain.status import (
    LATE_SUCCESS_FROM,
    OPEN,
    TERMINAL,
    PaymentStatus,
    late_success_overrides,
)

# The state machine speaks of a payment's status; one vocabulary (domain/status.py).
Status = PaymentStatus
__all__ = [
    "LATE_SUCCESS_FROM",
    "OPEN",
    "TERMINAL",
    "Refusal",
    "Status",
    "Transition",
    "Trigger",
    "decide",
    "provider_trigger",
]


class Trigger(StrEnum):
    """What can happen to a payment."""

    OPERATOR_SELECTED = "operator_selected"  # hosted page: the customer chose how to pay
    PROVIDER_PROCESSING = "provider_processing"
    PROVIDER_AWAITING_OTP = "provider_awaiting_otp"
    PROVIDER_AWAITING_PAYMENT = "provider_awaiting_payment"
    PROVIDER_COMPLETED = "provider_completed"
    PROVIDER_FAILED = "provider_failed"
    PROVIDER_CANCELLED = "provider_cancelled"
    MERCHANT_CANCEL = "merchant_cancel"
    EXPIRE = "expire"
    FULLY_REFUNDED = "fully_refunded"


EventType = Literal[
    "collect.payment.processing",
    "collect.payment.completed",
    "collect.payment.failed",
    "collect.payment.cancelled",
    "collect.payment.expired",
]

_EVENT_ON_ENTRY: dict[Status, EventType] = {
    Status.PROCESSING: "collect.payment.processing",
    Status.COMPLETED: "collect.payment.completed",
    Status.FAILED: "collect.payment.failed",
    Status.CANCELLED: "collect.payment.cancelled",
    Status.EXPIRED: "collect.payment.expired",
}

_TARGET: dict[Trigger, Status] = {
    Trigger.PROVIDER_PROCESSING: Status.PROCESSING,
    Trigger.PROVIDER_AWAITING_OTP: Status.AWAITING_OTP,
    Trigger.PROVIDER_AWAITING_PAYMENT: Status.AWAITING_PAYMENT,
    Trigger.PROVIDER_COMPLETED: Status.COMPLETED,
    Trigger.PROVIDER_FAILED: Status.FAILED,
    Trigger.PROVIDER_CANCELLED: Status.CANCELLED,
    Trigger.MERCHANT_CANCEL: Status.CANCELLED,
    Trigger.EXPIRE: Status.EXPIRED,
    Trigger.FULLY_REFUNDED: Status.REFUNDED,
    Trigger.OPERATOR_SELECTED: Status.PENDING,
}

# Allowed moves between distinct statuses (the diagram above).
_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.AWAITING_PAYMENT: frozenset(
        {
            Status.PENDING,
            Status.AWAITING_OTP,
            Status.PROCESSING,
            Status.COMPLETED,
            Status.FAILED,
            Status.CANCELLED,
            Status.EXPIRED,
        }
    ),
    Status.PENDING: frozenset(
        {
            # The provider's own page takes over (a card on Stripe Checkout).
            Status.AWAITING_PAYMENT,
            Status.PROCESSING,
            Status.AWAITING_OTP,
            Status.COMPLETED,
            Status.FAILED,
            Status.CANCELLED,
            Status.EXPIRED,
        }
    ),
    Status.AWAITING_OTP: frozenset(
        {Status.PROCESSING, Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.EXPIRED}
    ),
    Status.PROCESSING: frozenset(
        {Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.EXPIRED}
    ),
    Status.COMPLETED: frozenset({Status.REFUNDED}),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.EXPIRED: frozenset(),
    Status.REFUNDED: frozenset(),
}


@dataclass(frozen=True)
class Transition:
    """A decided move: the new status and what must happen with it."""

    previous: Status
    status: Status
    event: EventType | None = None
    late_success: bool = False
    # Ask the provider to stop pushing to the customer (cancel, expiry).
    cancel_at_provider: bool = False
    changed: bool = True


@dataclass(frozen=True)
class Refusal:
    """The trigger does not apply to the payment in its current status."""

    status: Status
    trigger: Trigger
    reason: str = field(default="")


def decide(status: Status, trigger: Trigger) -> Transition | Refusal:
    """What `trigger` does to a payment in `status`."""
    target = _TARGET[trigger]
    if trigger is Trigger.PROVIDER_COMPLETED and late_success_overrides(status):
        return Transition(status, Status.COMPLETED, "collect.payment.completed", late_success=True)
    if target == status:
        # A repeated provider report (processing twice, say) changes nothing.
        if is_provider_report(trigger):
            return Transition(status, status, changed=False)
        return Refusal(status, trigger, f"payment is already {status.value}")
    if target not in _ALLOWED[status]:
        if trigger is Trigger.OPERATOR_SELECTED:
            return Refusal(status, trigger, "the customer can only choose before paying")
        return Refusal(status, trigger, f"a {status.value} payment cannot become {target.value}")
    return Transition(
        status,
        target,
        _EVENT_ON_ENTRY.get(target),
        cancel_at_provider=trigger in (Trigger.MERCHANT_CANCEL, Trigger.EXPIRE),
    )


def is_provider_report(trigger: Trigger) -> bool:
    """The provider said so (as opposed to the merchant, the customer or the clock)."""
    match trigger:
        case (
            Trigger.PROVIDER_PROCESSING
            | Trigger.PROVIDER_AWAITING_OTP
            | Trigger.PROVIDER_AWAITING_PAYMENT
            | Trigger.PROVIDER_COMPLETED
            | Trigger.PROVIDER_FAILED
            | Trigger.PROVIDER_CANCELLED
        ):
            return True
        case (
            Trigger.OPERATOR_SELECTED
            | Trigger.MERCHANT_CANCEL
            | Trigger.EXPIRE
            | Trigger.FULLY_REFUNDED
        ):
            return False
        case _:
            assert_never(trigger)


def provider_trigger(status: ProviderPaymentStatus) -> Trigger:
    """What a connector's normalized status does to a payment."""
    match status:
        case "processing":
            return Trigger.PROVIDER_PROCESSING
        case "awaiting_otp":
            return Trigger.PROVIDER_AWAITING_OTP
        case "awaiting_payment":
            return Trigger.PROVIDER_AWAITING_PAYMENT
        case "completed":
            return Trigger.PROVIDER_COMPLETED
        case "failed":
            return Trigger.PROVIDER_FAILED
        case "cancelled":
            return Trigger.PROVIDER_CANCELLED
        case _:
            assert_never(status)
