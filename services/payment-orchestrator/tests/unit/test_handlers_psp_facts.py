"""Issue 13 on the handlers (fake unit of work): an OTP operator only reaches a provider that
checks codes, and the facts a PSP reports reach the merchant (charged amount, a refund's PSP
reference and failure message, a next action that always says something)."""

from __future__ import annotations

import uuid
from typing import Any

from fluxpay_common.messages import (
    CreatePayment,
    GetPayment,
    InitiatePayment,
    PaymentEvent,
    RefundEvent,
    RefundView,
    SelectOperator,
)
from payment_orchestrator.domain.status import PaymentStatus as S

# A live table as production has it: Novasend carries Benin, Coris included, but has no OTP
# flow (its confirmation is a link or a wallet approval, not a code we could submit).
LIVE_ROUTES = {"BJ:mtn": "mtn_momo", "BJ:*": "novasend"}


# ---------------------------------------------------------------- OTP-aware routing


async def test_live_otp_operator_without_an_otp_provider_is_refused(make_world) -> None:
    world = make_world(routes=LIVE_ROUTES)
    reply = await world.send(_create(world, operator="coris"))
    assert reply.payment is None and reply.error is not None
    assert (reply.error.code, reply.error.param) == ("operator_unavailable", "operator")
    assert "OTP" in reply.error.message
    assert world.store.payments == {} and world.commands(InitiatePayment) == []


async def test_live_operator_without_otp_still_goes_to_the_wider_route(make_world) -> None:
    world = make_world(routes=LIVE_ROUTES)
    payment = await world.create(operator="moov")
    assert payment.provider == "novasend" and payment.status is S.PENDING


async def test_otp_operator_is_routed_to_an_otp_provider_further_down_the_table(
    make_world,
) -> None:
    world = make_world(routes={"BJ:coris": "novasend", "*:*": "sandbox"})
    payment = await world.create(operator="coris")
    assert payment.provider == "sandbox" and payment.status is S.AWAITING_OTP


async def test_test_mode_otp_operator_goes_to_the_sandbox_which_checks_codes(make_world) -> None:
    world = make_world(routes=LIVE_ROUTES, environment="test")
    payment = await world.create(operator="coris")
    assert payment.provider == "sandbox" and payment.status is S.AWAITING_OTP


async def test_hosted_page_choosing_a_live_otp_operator_is_refused_and_can_choose_again(
    make_world,
) -> None:
    world = make_world(routes=LIVE_ROUTES)
    payment = await world.create(mode="hosted", operator=None)
    coris = await world.send(_choose(world, payment.id, "coris"))
    assert coris.error is not None and coris.error.code == "operator_unavailable"
    assert "OTP" in coris.error.message
    assert world.payment(payment.id).status is S.AWAITING_PAYMENT
    assert world.commands(InitiatePayment) == []
    mtn = await world.send(_choose(world, payment.id, "mtn"))
    assert mtn.payment is not None and mtn.payment.status == "pending"


# ---------------------------------------------------------------- facts the PSP reports


async def test_the_charged_amount_is_stored_and_announced_with_the_completion(
    make_world,
) -> None:
    world = make_world()
    payment = await world.create(amount=3000)
    await world.report(payment, "processing", charged_amount_minor=306_000)
    done = await world.report(payment, "completed", fee_minor=6_000)
    # A report that does not repeat it leaves the stored amount alone.
    assert done.charged_amount_minor == 306_000
    [completed] = [
        m for m in world.store.published("collect.payment.completed") if isinstance(m, PaymentEvent)
    ]
    assert completed.charged_amount_minor == 306_000 and completed.fee_minor == 6_000


async def test_a_payment_without_a_charged_amount_announces_none(make_world) -> None:
    world = make_world()
    payment = await world.report(await world.create(), "completed")
    assert payment.charged_amount_minor is None
    events = [m for m in world.store.published("collect.payment.") if isinstance(m, PaymentEvent)]
    assert events and all(e.charged_amount_minor is None for e in events)


async def test_a_completed_refund_shows_the_psp_reference(make_world) -> None:
    world = make_world()
    payment = await world.completed()
    reply = await world.refund(payment, 1000)
    await world.settle_refund(reply, "completed", psp_reference="psp-refund-77")
    refund = await _refund_announced(world, "collect.refund.completed")
    assert refund.psp_reference == "psp-refund-77" and refund.failure_message is None


async def test_a_failed_refund_says_why(make_world) -> None:
    world = make_world()
    payment = await world.completed()
    reply = await world.refund(payment, 1000)
    await world.settle_refund(
        reply,
        "failed",
        failure_code="provider_misconfigured",
        failure_message="MTN refused the disbursement token (404)",
    )
    refund = await _refund_announced(world, "collect.refund.failed")
    assert refund.failure_code == "provider_misconfigured"
    assert refund.failure_message == "MTN refused the disbursement token (404)"


async def test_every_status_has_a_next_action_message(make_world) -> None:
    world = make_world()
    pending = await world.create()
    completed = await world.report(await world.create(), "completed")
    failed = await world.report(await world.create(), "failed", failure_code="declined")
    for payment in (pending, completed, failed):
        reply = await world.send(GetPayment(reference_or_id=str(payment.id), **world.scope()))
        assert reply.payment is not None
        assert isinstance(reply.payment.next_action.message, str)
        assert reply.payment.next_action.message
    done = await world.send(GetPayment(reference_or_id=str(completed.id), **world.scope()))
    assert done.payment is not None and done.payment.next_action.type == "none"


def _create(world: Any, **fields: Any) -> CreatePayment:
    body: dict[str, Any] = {
        "idempotency_key": "key-1",
        "reference": "order-otp",
        "amount": 3000,
        "currency": "XOF",
        "country": "BJ",
        "customer": {"phone": "+22997000001"},
        **world.scope(),
        **fields,
    }
    return CreatePayment(**body)


def _choose(world: Any, payment_id: uuid.UUID, operator: str) -> SelectOperator:
    return SelectOperator(
        reference_or_id=str(payment_id), operator=operator, phone="+22997000009", **world.scope()
    )


async def _refund_announced(world: Any, event_type: str) -> RefundView:
    [event] = [m for m in world.store.published(event_type) if isinstance(m, RefundEvent)]
    return event.refund
