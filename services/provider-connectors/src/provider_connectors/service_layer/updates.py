"""Normalized messages the orchestrator receives, built from what the engine stored."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from fluxpay_common.messages import (
    ConnectorCommand,
    InitiatePayment,
    ProviderPaymentUpdate,
    ProviderRefundUpdate,
    RefundAtProvider,
    provider_update_id,
)
from fluxpay_common.tracing import current_traceparent
from provider_connectors.domain.model import Attempt, RefundAttempt

_FAILURE_STATUSES = ("failed", "cancelled", "awaiting_otp")


def new_attempt(cmd: InitiatePayment, now: datetime, resume_after: timedelta) -> Attempt:
    """A `pending` attempt: if this process dies before the PSP answers, the poller resumes
    it once `resume_after` has passed."""
    return Attempt(
        payment_id=cmd.payment_id,
        provider=cmd.provider,
        merchant_id=cmd.merchant_id,
        environment=cmd.environment,
        reference=cmd.reference,
        amount=cmd.amount,
        currency=cmd.currency,
        operator=cmd.operator,
        phone=cmd.phone,
        psp_reference=None,
        status="pending",
        next_poll_at=now + resume_after,
        expires_at=cmd.expires_at,
        otp_attempts=0,
        created_at=now,
        updated_at=now,
        data={
            "country": cmd.country,
            "customer": cmd.customer,
            "description": cmd.description,
            "correlation_id": cmd.correlation_id,
            # The payment's trace: the poller's and callbacks' later work continues it.
            "traceparent": current_traceparent(),
        },
    )


def new_refund(cmd: RefundAtProvider, now: datetime, resume_after: timedelta) -> RefundAttempt:
    return RefundAttempt(
        refund_id=cmd.refund_id,
        payment_id=cmd.payment_id,
        provider=cmd.provider,
        amount=cmd.amount,
        currency=cmd.currency,
        psp_reference=None,
        status="pending",
        next_poll_at=now + resume_after,
        created_at=now,
        updated_at=now,
        data={"correlation_id": cmd.correlation_id, "traceparent": current_traceparent()},
    )


def payment_update(
    attempt: Attempt, correlation_id: str | None = None, *, sequence: int | None = None
) -> ProviderPaymentUpdate:
    """The attempt as the orchestrator sees it; `pending` reads as `processing`. A published
    update carries its `sequence` (and the message id derived from it)."""
    status = "processing" if attempt.status == "pending" else attempt.status
    data = attempt.data
    completed = status == "completed"
    return ProviderPaymentUpdate(
        correlation_id=correlation_id or data.get("correlation_id") or "",
        payment_id=attempt.payment_id,
        provider=attempt.provider,
        status=status,
        psp_reference=attempt.psp_reference,
        failure_code=data.get("failure_code") if status in _FAILURE_STATUSES else None,
        failure_message=data.get("failure_message") if status in _FAILURE_STATUSES else None,
        fee_minor=data.get("fee_minor") if completed else None,
        charged_amount_minor=data.get("charged_amount_minor") if completed else None,
        checkout_url=data.get("checkout_url"),
        otp_attempts_left=data.get("otp_attempts_left") if status == "awaiting_otp" else None,
        sequence=sequence,
        **({"message_id": provider_update_id(attempt.payment_id, sequence)} if sequence else {}),
    )


def otp_not_ready(cmd: ConnectorCommand) -> ProviderPaymentUpdate:
    """The reply to an OTP sent before the push reached the PSP: try again shortly."""
    return ProviderPaymentUpdate(
        correlation_id=cmd.correlation_id,
        payment_id=cmd.payment_id,
        provider=cmd.provider,
        status="awaiting_otp",
        failure_code="otp_not_ready",
        failure_message="The operator has not sent the code yet; retry in a few seconds.",
    )


def attempt_not_started(cmd: ConnectorCommand) -> ProviderPaymentUpdate:
    """The reply to a sync for a payment this connector has not received yet: no news, said
    at once (the orchestrator keeps the payment as stored) rather than by silence."""
    return ProviderPaymentUpdate(
        correlation_id=cmd.correlation_id,
        payment_id=cmd.payment_id,
        provider=cmd.provider,
        status="processing",
        failure_code="attempt_not_started",
        failure_message="The provider has not received this payment yet.",
    )


def refund_update(refund: RefundAttempt) -> ProviderRefundUpdate:
    assert refund.status != "pending", "only a settled refund is announced"
    return ProviderRefundUpdate(
        correlation_id=refund.data.get("correlation_id") or "",
        payment_id=refund.payment_id,
        refund_id=refund.refund_id,
        provider=refund.provider,
        status=refund.status,
        psp_reference=refund.psp_reference,
        failure_code=refund.data.get("failure_code") if refund.status == "failed" else None,
        failure_message=refund.data.get("failure_message") if refund.status == "failed" else None,
    )


def refused_refund(cmd: RefundAtProvider, code: str, message: str) -> ProviderRefundUpdate:
    """A refund the connector cannot even attempt (unknown or unpaid payment)."""
    return ProviderRefundUpdate(
        correlation_id=cmd.correlation_id,
        payment_id=cmd.payment_id,
        refund_id=cmd.refund_id,
        provider=cmd.provider,
        status="failed",
        failure_code=code,
        failure_message=message,
        message_id=uuid.uuid5(cmd.refund_id, "refused"),
    )
