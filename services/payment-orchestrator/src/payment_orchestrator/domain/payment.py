"""A payment and its refunds, with the rules that change them. Pure: no I/O, no clock.

A `Payment` is what the orchestrator stores; its methods decide and return a `PaymentChange`
(the new payment, the transition, the columns to write) that the unit of work persists in
one statement. Rules live here once: the OTP attempts a customer gets, what can still be
refunded, which columns a transition may change, that a late success clears the failure
it overrides.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from payment_orchestrator.domain.errors import (
    AmountInvalid,
    PaymentNotRefundable,
    RefundAlreadyPending,
    RefundExceedsPayment,
)
from payment_orchestrator.domain.state_machine import Refusal, Transition, Trigger, decide
from payment_orchestrator.domain.status import PaymentStatus, RefundStatus, is_terminal

# Wrong OTPs a customer may enter before the payment fails (the PSP enforces its own).
OTP_ATTEMPTS = 3
# Columns a transition may change besides the status.
MUTABLE = frozenset(
    {
        "psp_reference",
        "failure_code",
        "failure_message",
        "fee_minor",
        "charged_amount_minor",
        "otp_attempts_left",
        "operator",
        "customer",
        "provider",
        "provider_checkout_url",
    }
)
EXPIRED_FAILURE = {
    "failure_code": "expired",
    "failure_message": "The customer did not pay in time.",
}


@dataclass(frozen=True)
class Payment:
    id: uuid.UUID
    merchant_id: uuid.UUID
    environment: Literal["test", "live"]
    reference: str
    idempotency_key: str
    status: PaymentStatus
    amount: int
    currency: str
    country: str
    mode: Literal["direct", "hosted"]
    operator: str | None
    customer: dict[str, Any] | None
    description: str | None
    callback_url: str | None
    external_merchant_id: str | None
    metadata: dict[str, Any]
    provider: str | None
    psp_reference: str | None
    failure_code: str | None
    failure_message: str | None
    fee_minor: int | None
    # What the customer paid in all (amount + a fee the PSP charged them), when it says.
    charged_amount_minor: int | None
    refunded_amount: int
    late_success: bool
    otp_attempts_left: int | None
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    version: int
    provider_checkout_url: str | None
    # The trace the merchant's create request opened; later work of the payment joins it.
    traceparent: str | None = None

    @property
    def is_open(self) -> bool:
        return not is_terminal(self.status)

    @property
    def phone(self) -> str | None:
        return (self.customer or {}).get("phone")

    def apply(
        self, trigger: Trigger, changes: dict[str, Any] | None = None
    ) -> PaymentChange | Refusal:
        """Decide what `trigger` does, and the payment it leaves (not yet stored)."""
        decision = decide(self.status, trigger)
        if isinstance(decision, Refusal):
            return decision
        updates = {k: v for k, v in (changes or {}).items() if k in MUTABLE}
        if not decision.changed:
            # A repeated report keeps the failure the payment already shows.
            updates.pop("failure_code", None)
            updates.pop("failure_message", None)
        if decision.status is PaymentStatus.COMPLETED and decision.changed:
            # A late success overrides the failure or expiry recorded before it.
            updates.setdefault("failure_code", None)
            updates.setdefault("failure_message", None)
        after = replace(
            self,
            status=decision.status,
            late_success=self.late_success or decision.late_success,
            **updates,
        )
        needs_write = decision.changed or any(
            getattr(self, k) != v for k, v in updates.items() if v is not None
        )
        return PaymentChange(self, after, decision, tuple(updates), needs_write)

    def refundable(self, pending_amount: int, requested: int | None) -> int:
        """The amount a refund would return (`requested`, or all that is left), or why not.

        `pending_amount`: this payment's refunds accepted and not yet settled.
        """
        if self.status is not PaymentStatus.COMPLETED:
            raise PaymentNotRefundable(
                f"Only a completed payment can be refunded; this one is {self.status.value}."
            )
        remaining = self.amount - self.refunded_amount - pending_amount
        amount = remaining if requested is None else requested
        if amount <= 0 and requested is None:
            raise RefundAlreadyPending("Refunds already pending cover the whole payment.")
        if amount <= 0:
            raise AmountInvalid("A refund amount must be positive.")
        if amount > remaining:
            raise RefundExceedsPayment(
                f"At most {remaining} {self.currency} of this payment can still be refunded."
            )
        return amount

    def is_fully_refunded(self) -> bool:
        return self.refunded_amount == self.amount


def initial_status(mode: str, otp_required: bool) -> PaymentStatus:
    if mode == "hosted":
        return PaymentStatus.AWAITING_PAYMENT
    return PaymentStatus.AWAITING_OTP if otp_required else PaymentStatus.PENDING


def otp_attempts(status: PaymentStatus) -> int | None:
    """A payment starts counting wrong OTPs when it starts awaiting one."""
    return OTP_ATTEMPTS if status is PaymentStatus.AWAITING_OTP else None


@dataclass(frozen=True)
class NewPayment:
    """What a create command fixes; the store adds the clock's fields."""

    id: uuid.UUID
    merchant_id: uuid.UUID
    environment: Literal["test", "live"]
    reference: str
    idempotency_key: str
    status: PaymentStatus
    amount: int
    currency: str
    country: str
    mode: Literal["direct", "hosted"]
    operator: str | None
    customer: dict[str, Any] | None
    description: str | None
    callback_url: str | None
    external_merchant_id: str | None
    metadata: dict[str, Any]
    provider: str | None
    otp_attempts_left: int | None
    # Seconds from the store's clock to the deadline (the merchant's delay, scaled in tests).
    expires_in_seconds: float

    def stored_at(self, now: datetime) -> Payment:
        """The payment as the store keeps it when created at `now` (one clock read: the
        events announcing it are built before the statement that stores it)."""
        return Payment(
            **{f.name: getattr(self, f.name) for f in fields(self) if f.name in _NEW_FIELDS},
            psp_reference=None,
            failure_code=None,
            failure_message=None,
            fee_minor=None,
            charged_amount_minor=None,
            refunded_amount=0,
            late_success=False,
            expires_at=now + timedelta(seconds=self.expires_in_seconds),
            created_at=now,
            updated_at=now,
            completed_at=None,
            version=1,
            provider_checkout_url=None,
        )


_NEW_FIELDS = frozenset(f.name for f in fields(Payment)) - {"traceparent"}


@dataclass(frozen=True)
class PaymentChange:
    """A decided change of a payment: what the unit of work writes in one statement."""

    before: Payment
    after: Payment
    transition: Transition
    # Columns besides the status to write (a provider's `None` included: it clears).
    columns: tuple[str, ...]
    needs_write: bool

    def stored_at(self, now: datetime) -> PaymentChange:
        """The change with the clock's fields the store writes at `now` (the version the
        locked row moves to, the completion time of a completed payment)."""
        completed = self.after.status is PaymentStatus.COMPLETED
        after = replace(
            self.after,
            updated_at=now,
            version=self.before.version + 1,
            completed_at=now if completed else self.before.completed_at,
        )
        return replace(self, after=after)


@dataclass(frozen=True)
class Refund:
    id: uuid.UUID
    payment_id: uuid.UUID
    merchant_id: uuid.UUID
    environment: Literal["test", "live"]
    idempotency_key: str | None
    status: RefundStatus
    amount: int
    currency: str
    reason: str | None
    metadata: dict[str, Any]
    psp_reference: str | None
    failure_code: str | None
    failure_message: str | None
    created_at: datetime
    completed_at: datetime | None

    @property
    def is_pending(self) -> bool:
        return self.status is RefundStatus.PENDING


def refund_id_for(payment_id: uuid.UUID, idempotency_key: str | None) -> uuid.UUID | None:
    """Derived from the idempotency key when there is one, so a retry after a crash
    between the ledger's hold and the refund's insert finds the same hold again."""
    if idempotency_key:
        return uuid.uuid5(payment_id, f"refund:{idempotency_key}")
    return None
