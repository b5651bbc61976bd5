"""Wire events as the orchestrator publishes them, for the ledger's tests (no pytest import)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fluxpay_common.messages import (
    Environment,
    NextAction,
    PaymentEvent,
    PaymentEventType,
    PaymentView,
    RefundEvent,
    RefundView,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def payment_view(
    *,
    payment_id: uuid.UUID | None = None,
    amount: int = 3000,
    currency: str = "XOF",
    operator: str | None = "mtn",
    environment: Environment = "test",
    status: str = "completed",
    completed_at: datetime | None = NOW,
) -> PaymentView:
    return PaymentView(
        id=payment_id or uuid.uuid4(),
        reference=f"order-{uuid.uuid4().hex[:8]}",
        status=status,  # type: ignore[arg-type]
        amount=amount,
        amount_minor=amount * 100,
        currency=currency,
        country="BJ",
        mode="direct",
        operator=operator,
        next_action=NextAction(type="none"),
        environment=environment,
        created_at=NOW,
        completed_at=completed_at,
    )


def payment_event(
    payment: PaymentView,
    merchant_id: uuid.UUID,
    *,
    type: PaymentEventType = "collect.payment.completed",
    provider: str | None = "sandbox",
    fee_minor: int | None = None,
    late_success: bool = False,
    **fields: Any,
) -> PaymentEvent:
    return PaymentEvent(
        type=type,
        merchant_id=merchant_id,
        environment=payment.environment,
        provider=provider,
        payment=payment,
        fee_minor=fee_minor,
        late_success=late_success,
        **fields,
    )


def refund_event(
    payment: PaymentView,
    merchant_id: uuid.UUID,
    amount: int,
    *,
    completed: bool = True,
    provider: str | None = "sandbox",
    refund_id: uuid.UUID | None = None,
    occurred_at: datetime = NOW,
) -> RefundEvent:
    status = "completed" if completed else "failed"
    return RefundEvent(
        type=f"collect.refund.{status}",  # type: ignore[arg-type]
        merchant_id=merchant_id,
        environment=payment.environment,
        provider=provider,
        occurred_at=occurred_at,
        payment=payment,
        refund=RefundView(
            id=refund_id or uuid.uuid4(),
            payment_id=payment.id,
            reference=f"refund-{uuid.uuid4().hex[:8]}",
            status=status,  # type: ignore[arg-type]
            amount=amount,
            currency=payment.currency,
            created_at=NOW,
        ),
    )
