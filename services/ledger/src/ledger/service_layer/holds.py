"""Refund holds over request/reply and the outbox: reserve before a refund, release after.

The orchestrator asks for a hold before it accepts a refund and holds no lock of its own
meanwhile; the ledger serializes holds per merchant balance, so ten refunds on ten payments
of one merchant cannot spend the same money (issue 11, item 3).
"""

from __future__ import annotations

from typing import Any

from fluxpay_common.logging import get_logger
from fluxpay_common.messages import ReleaseRefundHold, ReserveRefund
from ledger.domain.holds import HoldDecision, HoldRequest, HoldStatus, decide_hold
from ledger.service_layer.ports import OpenHolds

log = get_logger(__name__)


async def reserve_refund(command: ReserveRefund, open_holds: OpenHolds) -> HoldDecision:
    """Hold the refund's amount if the available balance covers it; asking twice is safe."""
    request = _request(command)
    async with open_holds() as holds:
        await holds.lock_balance(request.balance_key)
        booked, held = await holds.booked_and_held(request.balance_key)
        match await holds.find(request.refund_id):
            case HoldStatus.HELD:
                # A retried request: the hold is already counted in `held`.
                return HoldDecision(True, booked - held + request.amount_minor)
            case HoldStatus.CONSUMED | HoldStatus.RELEASED:
                # A refund id is held once: an ended hold is never placed again.
                return HoldDecision(False, booked - held)
            case None:
                pass
        decision = decide_hold(request, booked, held)
        if decision.held:
            await holds.place(request)
    log.info("refund_hold_decided", held=decision.held, refund_id=str(request.refund_id))
    return decision


async def release_hold(command: ReleaseRefundHold, open_holds: OpenHolds) -> None:
    async with open_holds() as holds:
        await holds.settle(command.refund_id, HoldStatus.RELEASED)
    log.info("refund_hold_released", refund_id=str(command.refund_id))


def hold_body(decision: HoldDecision) -> dict[str, Any]:
    return {"held": decision.held, "available_minor": decision.available_minor}


def _request(command: ReserveRefund) -> HoldRequest:
    return HoldRequest(
        refund_id=command.refund_id,
        payment_id=command.payment_id,
        merchant_id=command.merchant_id,
        environment=command.environment,
        currency=command.currency,
        amount_minor=command.amount_minor,
    )
