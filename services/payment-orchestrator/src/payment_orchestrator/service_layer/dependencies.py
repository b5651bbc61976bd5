"""What every handler is given: the unit of work, the calls to other services, the policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from fluxpay_common.fees import FeeSchedule
from fluxpay_common.messages import (
    CancelPayment,
    ConfirmPayment,
    GetPayment,
    PaymentView,
    RefundPayment,
    SelectOperator,
)
from payment_orchestrator.domain.payment import (
    Payment,
)
from payment_orchestrator.service_layer.ports import (
    ConnectorCall,
    OpenUnitOfWork,
    RefundReservation,
)
from payment_orchestrator.views import payment_view

CONSUMER = "orchestrator"
PaymentCommand: TypeAlias = (
    GetPayment | ConfirmPayment | CancelPayment | RefundPayment | SelectOperator
)


@dataclass(frozen=True)
class Policy:
    """The settings the rules need (from `config.Settings`, wired in bootstrap)."""

    routes: dict[str, str]
    checkout_base_url: str
    fees: FeeSchedule
    expiry_time_scale: float = 1.0


@dataclass(frozen=True)
class Dependencies:
    open_uow: OpenUnitOfWork
    call_connector: ConnectorCall
    # None: no ledger to hold refunds at (the handler tests of other flows).
    reserve_refund: RefundReservation | None
    policy: Policy

    def view(self, payment: Payment) -> PaymentView:
        return payment_view(payment, self.policy.checkout_base_url, self.policy.fees)
