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
from typing import Literal


class Status(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    AWAITING_OTP = "awaiting_otp"
    AWAITING_PAYMENT = "awaiting_payment"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REFUNDED = "refunded"


TERMINAL = frozenset(
    {Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.EXPIRED, Status.REFUNDED}
)
# Statuses from which the payment may still move money towards completion.
OPEN = frozenset(set(Status) - TERMINAL)
# Terminal statuses a late PSP success overrides.
LATE_SUCCESS_FROM = frozenset({Status.EXPIRED, Status.CANCELLED, Status.FAILED})


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
    if trigger is Trigger.PROVIDER_COMPLETED and status in LATE_SUCCESS_FROM:
        return Transition(status, Status.COMPLETED, "collect.payment.completed", late_success=True)
    if target == status:
        # A repeated provider report (processing twice, say) changes nothing.
        if trigger.value.startswith("provider_"):
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


PROVIDER_TRIGGERS: dict[str, Trigger] = {
    "processing": Trigger.PROVIDER_PROCESSING,
    "awaiting_otp": Trigger.PROVIDER_AWAITING_OTP,
    "awaiting_payment": Trigger.PROVIDER_AWAITING_PAYMENT,
    "completed": Trigger.PROVIDER_COMPLETED,
    "failed": Trigger.PROVIDER_FAILED,
    "cancelled": Trigger.PROVIDER_CANCELLED,
}
