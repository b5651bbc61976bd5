"""Every command and event through the handlers, on the in-memory unit of work: what each
one changes, emits and refuses, the unhappy paths included."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from fluxpay_common.messages import (
    CancelAtProvider,
    CancelPayment,
    ConfirmPayment,
    CreatePayment,
    GetPayment,
    InitiatePayment,
    ProviderPaymentUpdate,
    RefundAtProvider,
    ReleaseRefundHold,
    SelectOperator,
    SubmitOtp,
    SyncStatus,
    provider_update_id,
)
from fluxpay_common.rpc import RpcTimeout
from payment_orchestrator.domain.payment import OTP_ATTEMPTS
from payment_orchestrator.domain.status import PaymentStatus as S
from payment_orchestrator.service_layer import handlers
from payment_orchestrator.service_layer.updates import OrderWait, on_published_update

# ---------------------------------------------------------------- create and read


async def test_create_direct_payment_is_pending_and_initiated_at_its_provider(make_world) -> None:
    world = make_world()
    payment = await world.create()
    assert payment.status is S.PENDING and payment.provider == "mtn_momo"
    assert world.events(payment) == ["collect.payment.created"]
    [initiate] = world.commands(InitiatePayment)
    assert initiate.payment_id == payment.id and initiate.phone == "+22997000001"
    assert [(t.from_status, t.to_status) for t in world.store.transitions] == [(None, S.PENDING)]


async def test_create_with_an_otp_operator_awaits_the_otp_with_the_attempts_limit(
    make_world,
) -> None:
    world = make_world()
    payment = await world.create(operator="coris")
    assert payment.status is S.AWAITING_OTP and payment.otp_attempts_left == OTP_ATTEMPTS


async def test_create_hosted_awaits_the_customer_on_the_checkout_page(make_world) -> None:
    world = make_world()
    payment = await world.create(mode="hosted", operator=None)
    assert payment.status is S.AWAITING_PAYMENT and payment.provider is None
    assert world.commands(InitiatePayment) == []
    reply = await world.send(GetPayment(reference_or_id=payment.reference, **world.scope()))
    assert reply.payment is not None
    assert reply.payment.checkout_url == f"https://pay.test/checkout/{payment.id}"


async def test_create_replayed_answers_the_same_payment_and_another_key_conflicts(
    make_world,
) -> None:
    world = make_world()
    first = await world.create(reference="order-1", idempotency_key="k1")
    again = await world.send(
        CreatePayment(
            idempotency_key="k1",
            reference="order-1",
            amount=3000,
            currency="XOF",
            country="BJ",
            operator="mtn",
            **world.scope(),
        )
    )
    assert again.payment is not None and again.payment.id == first.id and not again.created
    other = await world.send(
        CreatePayment(
            idempotency_key="k2",
            reference="order-1",
            amount=3000,
            currency="XOF",
            country="BJ",
            operator="mtn",
            **world.scope(),
        )
    )
    assert other.error is not None and other.error.code == "reference_already_exists"
    assert len(world.store.payments) == 1 and len(world.commands(InitiatePayment)) == 1


async def test_create_without_a_route_is_refused_and_stores_nothing(make_world) -> None:
    world = make_world()
    reply = await world.send(
        CreatePayment(
            idempotency_key="k",
            reference="r",
            amount=3000,
            currency="XOF",
            country="TG",
            operator="moov",
            **world.scope(),
        )
    )
    assert reply.error is not None and reply.error.code == "operator_unavailable"
    assert reply.error.param == "operator" and reply.error.status is None
    assert world.store.payments == {} and world.store.outbox == []


async def test_another_merchants_payment_is_not_found(make_world) -> None:
    world = make_world()
    payment = await world.create()
    reply = await world.send(
        GetPayment(reference_or_id=str(payment.id), merchant_id=uuid.uuid4(), environment="live")
    )
    assert reply.error is not None and reply.error.code == "payment_not_found"


async def test_get_with_sync_applies_what_the_provider_says(make_world) -> None:
    world = make_world()
    payment = await world.create()
    world.connector.script.append(lambda r: world.update(payment, "completed"))
    reply = await world.send(
        GetPayment(reference_or_id=payment.reference, sync=True, **world.scope())
    )
    assert isinstance(world.connector.requests[0], SyncStatus)
    assert reply.payment is not None and reply.payment.status == "completed"


async def test_get_with_sync_answers_the_stored_payment_when_the_provider_is_silent(
    make_world,
) -> None:
    world = make_world()
    payment = await world.create()
    world.connector.script.append(lambda r: RpcTimeout("connector"))
    reply = await world.send(
        GetPayment(reference_or_id=payment.reference, sync=True, **world.scope())
    )
    assert reply.payment is not None and reply.payment.status == "pending"


# ---------------------------------------------------------------- provider updates


async def test_provider_updates_move_the_payment_and_announce_each_move(make_world) -> None:
    world = make_world()
    payment = await world.create()
    await world.report(payment, "processing", psp_reference="psp-1")
    done = await world.report(payment, "completed", fee_minor=4_500)
    assert done.status is S.COMPLETED and done.fee_minor == 4_500 and done.completed_at
    assert done.psp_reference == "psp-1"
    assert world.events(payment) == [
        "collect.payment.created",
        "collect.payment.processing",
        "collect.payment.completed",
    ]


async def test_a_redelivered_provider_update_changes_nothing(make_world) -> None:
    world = make_world()
    payment = await world.create()
    update = world.update(payment, "completed")
    await handlers.handle_event(update, world.deps)
    await handlers.handle_event(update, world.deps)
    assert world.events(payment).count("collect.payment.completed") == 1
    assert world.payment(payment.id).version == 2


async def test_a_repeated_status_from_the_provider_is_no_new_event(make_world) -> None:
    world = make_world()
    payment = await world.create()
    await world.report(payment, "processing")
    again = await world.report(payment, "processing", psp_reference="psp-2")
    assert again.psp_reference == "psp-2"
    assert world.events(payment).count("collect.payment.processing") == 1


async def test_an_update_arriving_after_a_later_one_is_ignored(make_world) -> None:
    world = make_world()
    payment = await world.create()
    await world.report(payment, "completed")
    stale = await world.report(payment, "processing")
    failed = await world.report(payment, "failed", failure_code="declined")
    assert stale.status is failed.status is S.COMPLETED and failed.failure_code is None
    assert world.events(payment)[-1] == "collect.payment.completed"


def _numbered(world, payment, status: str, sequence: int, **fields):
    return world.update(
        payment,
        status,
        sequence=sequence,
        message_id=provider_update_id(payment.id, sequence),
        **fields,
    )


async def test_numbered_updates_handled_at_once_apply_in_their_order(make_world) -> None:
    """`completed` (2) handled while `processing` (1) is still in flight waits for it: the
    merchant is told of both, in order."""
    world = make_world()
    payment = await world.create()
    completed = asyncio.create_task(
        handlers.handle_event(_numbered(world, payment, "completed", 2), world.deps)
    )
    await asyncio.sleep(0.05)
    assert not completed.done(), "completed must wait for its predecessor"
    await handlers.handle_event(_numbered(world, payment, "processing", 1), world.deps)
    await asyncio.wait_for(completed, 5)
    assert world.payment(payment.id).status is S.COMPLETED
    assert world.events(payment) == [
        "collect.payment.created",
        "collect.payment.processing",
        "collect.payment.completed",
    ]


async def test_a_numbered_update_whose_predecessor_never_comes_applies_after_the_wait(
    make_world,
) -> None:
    world = make_world()
    payment = await world.create()
    update = _numbered(world, payment, "completed", 3)
    await on_published_update(update, world.deps, OrderWait(budget_seconds=0.1))
    assert world.payment(payment.id).status is S.COMPLETED


async def test_a_failure_is_recorded_with_its_reason(make_world) -> None:
    world = make_world()
    payment = await world.report(
        await world.create(), "failed", failure_code="insufficient_funds", failure_message="No"
    )
    assert payment.status is S.FAILED and payment.failure_code == "insufficient_funds"
    assert world.events(payment)[-1] == "collect.payment.failed"


@pytest.mark.parametrize("gave_up", ["cancel", "expire", "fail"])
async def test_a_late_success_is_recorded_booked_and_reported(make_world, gave_up: str) -> None:
    world = make_world()
    payment = await world.create()
    if gave_up == "cancel":
        await world.send(CancelPayment(reference_or_id=payment.reference, **world.scope()))
    elif gave_up == "expire":
        world.expire_all()
        assert await handlers.expire_due(world.deps) == 1
    else:
        await world.report(payment, "failed", failure_code="timeout")
    late = await world.report(payment, "completed")
    assert late.status is S.COMPLETED and late.late_success
    assert late.failure_code is None and late.failure_message is None
    [event] = [
        m for m in world.store.published("collect.payment.completed") if m.payment.id == late.id
    ]
    assert event.late_success


async def test_an_update_for_an_unknown_payment_is_refused_not_dropped(make_world) -> None:
    world = make_world()
    update = ProviderPaymentUpdate(payment_id=uuid.uuid4(), provider="mtn_momo", status="completed")
    with pytest.raises(LookupError):
        await handlers.handle_event(update, world.deps)
    assert world.store.inbox == set()


async def test_a_provider_checkout_page_replaces_ours(make_world) -> None:
    world = make_world()
    payment = await world.create(operator="card", customer=None)
    moved = await world.report(payment, "awaiting_payment", checkout_url="https://psp/pay/1")
    assert moved.status is S.AWAITING_PAYMENT and moved.provider_checkout_url == "https://psp/pay/1"


# ---------------------------------------------------------------- cancel and expiry


async def test_cancel_stops_the_push_at_the_provider(make_world) -> None:
    world = make_world()
    payment = await world.create()
    reply = await world.send(
        CancelPayment(reference_or_id=payment.reference, reason="out of stock", **world.scope())
    )
    assert reply.payment is not None and reply.payment.status == "cancelled"
    assert reply.payment.failure_code == "cancelled_by_merchant"
    assert [c.payment_id for c in world.commands(CancelAtProvider)] == [payment.id]
    assert world.events(payment)[-1] == "collect.payment.cancelled"


async def test_a_completed_payment_cannot_be_cancelled(make_world) -> None:
    world = make_world()
    payment = await world.completed()
    reply = await world.send(CancelPayment(reference_or_id=payment.reference, **world.scope()))
    assert reply.error is not None and reply.error.code == "payment_not_cancellable"
    assert world.payment(payment.id).status is S.COMPLETED


async def test_expiry_expires_open_payments_past_their_deadline_only(make_world) -> None:
    world = make_world()
    due, done = await world.create(), await world.completed()
    world.expire_all()
    fresh = await world.create()
    assert await handlers.expire_due(world.deps) == 1
    expired = world.payment(due.id)
    assert expired.status is S.EXPIRED and expired.failure_code == "expired"
    assert world.payment(fresh.id).status is S.PENDING
    assert world.payment(done.id).status is S.COMPLETED
    assert [c.payment_id for c in world.commands(CancelAtProvider)] == [due.id]


# ---------------------------------------------------------------- OTP


async def test_a_right_otp_moves_the_payment_on(make_world) -> None:
    world = make_world()
    payment = await world.create(operator="coris")
    world.connector.script.append(lambda r: world.update(payment, "processing"))
    reply = await world.send(
        ConfirmPayment(reference_or_id=payment.reference, otp="1234", **world.scope())
    )
    assert isinstance(world.connector.requests[0], SubmitOtp)
    assert reply.payment is not None and reply.payment.status == "processing"


async def test_wrong_otps_count_down_then_fail_the_payment(make_world) -> None:
    world = make_world()
    payment = await world.create(operator="coris")
    for left in range(OTP_ATTEMPTS - 1, 0, -1):
        world.connector.script.append(
            lambda r, left=left: world.update(
                payment, "awaiting_otp", failure_code="otp_invalid", otp_attempts_left=left
            )
        )
        reply = await world.send(
            ConfirmPayment(reference_or_id=payment.reference, otp="0000", **world.scope())
        )
        assert reply.error is not None and reply.error.code == "otp_invalid"
        assert f"{left} attempt(s) left" in reply.error.message
        assert world.payment(payment.id).otp_attempts_left == left
    world.connector.script.append(
        lambda r: world.update(
            payment, "failed", failure_code="otp_attempts_exceeded", otp_attempts_left=0
        )
    )
    reply = await world.send(
        ConfirmPayment(reference_or_id=payment.reference, otp="0000", **world.scope())
    )
    assert reply.error is not None and reply.error.code == "otp_attempts_exceeded"
    assert world.payment(payment.id).status is S.FAILED
    again = await world.send(
        ConfirmPayment(reference_or_id=payment.reference, otp="1234", **world.scope())
    )
    assert again.error is not None and again.error.code == "payment_not_awaiting_otp"


async def test_an_otp_too_early_or_unanswered_changes_nothing(make_world) -> None:
    world = make_world()
    payment = await world.create(operator="coris")
    world.connector.script += [
        lambda r: world.update(payment, "awaiting_otp", failure_code="otp_not_ready"),
        lambda r: RpcTimeout("connector"),
    ]
    confirm = ConfirmPayment(reference_or_id=payment.reference, otp="1", **world.scope())
    early, silent = await world.send(confirm), await world.send(confirm)
    assert early.error is not None and early.error.code == "otp_not_ready"
    assert silent.error is not None and silent.error.code == "provider_unavailable"
    assert silent.error.type == "api_error"
    assert world.payment(payment.id).version == 1


async def test_otp_and_sync_requests_carry_the_payments_initiate(make_world) -> None:
    """They travel directly and may overtake the outbox's initiate: the connector starts
    from their copy, whose id dedups it against the outbox's in the connector's inbox."""
    world = make_world()
    payment = await world.create(operator="coris")
    world.connector.script += [
        lambda r: world.update(payment, "awaiting_otp", failure_code="otp_not_ready"),
        lambda r: world.update(payment, "awaiting_otp"),
    ]
    await world.send(ConfirmPayment(reference_or_id=payment.reference, otp="1", **world.scope()))
    await world.send(GetPayment(reference_or_id=payment.reference, sync=True, **world.scope()))
    [published] = world.commands(InitiatePayment)
    for request in world.connector.requests:
        assert isinstance(request, SubmitOtp | SyncStatus) and request.initiate is not None
        copy = request.initiate.model_dump(exclude={"correlation_id", "occurred_at"})
        assert copy == published.model_dump(exclude={"correlation_id", "occurred_at"})


async def test_sync_before_the_provider_received_the_payment_keeps_it_as_stored(
    make_world,
) -> None:
    world = make_world()
    payment = await world.create()
    world.connector.script.append(
        lambda r: world.update(payment, "processing", failure_code="attempt_not_started")
    )
    reply = await world.send(
        GetPayment(reference_or_id=payment.reference, sync=True, **world.scope())
    )
    assert reply.payment is not None and reply.payment.status == "pending"
    assert reply.payment.failure_code is None
    assert world.payment(payment.id).version == 1


async def test_an_otp_for_a_payment_not_awaiting_one_is_refused(make_world) -> None:
    world = make_world()
    payment = await world.create()
    reply = await world.send(
        ConfirmPayment(reference_or_id=payment.reference, otp="1234", **world.scope())
    )
    assert reply.error is not None and reply.error.code == "payment_not_awaiting_otp"
    assert world.connector.requests == []


# ---------------------------------------------------------------- hosted: operator chosen


async def test_choosing_an_operator_goes_direct(make_world) -> None:
    world = make_world()
    payment = await world.create(mode="hosted", operator=None)
    reply = await world.send(
        SelectOperator(
            reference_or_id=str(payment.id), operator="mtn", phone="+22997000009", **world.scope()
        )
    )
    assert reply.payment is not None and reply.payment.status == "pending"
    chosen = world.payment(payment.id)
    assert chosen.provider == "mtn_momo" and chosen.phone == "+22997000009"
    assert [i.phone for i in world.commands(InitiatePayment)] == ["+22997000009"]


async def test_choosing_an_otp_operator_awaits_the_otp(make_world) -> None:
    world = make_world()
    payment = await world.create(mode="hosted", operator=None)
    await world.send(
        SelectOperator(
            reference_or_id=str(payment.id), operator="coris", phone="+2290100", **world.scope()
        )
    )
    chosen = world.payment(payment.id)
    assert chosen.status is S.AWAITING_OTP and chosen.otp_attempts_left == OTP_ATTEMPTS


async def test_choosing_twice_or_an_unrouted_operator_is_refused(make_world) -> None:
    world = make_world()
    payment = await world.create(mode="hosted", operator=None)
    choose = SelectOperator(
        reference_or_id=str(payment.id), operator="mtn", phone="+22997000009", **world.scope()
    )
    await world.send(choose)
    twice = await world.send(choose)
    assert twice.error is not None and twice.error.code == "payment_not_awaiting_payment"
    other = await world.create(mode="hosted", operator=None)
    unrouted = await world.send(
        SelectOperator(reference_or_id=str(other.id), operator="moov", phone="+1", **world.scope())
    )
    assert unrouted.error is not None and unrouted.error.code == "operator_unavailable"
    assert len(world.commands(InitiatePayment)) == 1


# ---------------------------------------------------------------- refunds


async def test_a_refund_is_held_at_the_ledger_then_sent_to_the_provider(make_world) -> None:
    world = make_world()
    payment = await world.completed()
    reply = await world.refund(payment, 1000, idempotency_key="r1")
    assert reply.created and reply.refund is not None and reply.refund.status == "pending"
    assert world.ledger.holds == {reply.refund.id: 100_000}
    [at_provider] = world.commands(RefundAtProvider)
    assert at_provider.refund_id == reply.refund.id and at_provider.amount == 1000


async def test_a_retried_refund_answers_the_same_refund_and_holds_once(make_world) -> None:
    world = make_world()
    payment = await world.completed()
    first = await world.refund(payment, 1000, idempotency_key="r1")
    again = await world.refund(payment, 1000, idempotency_key="r1")
    assert again.refund == first.refund and not again.created
    assert len(world.ledger.holds) == 1 and len(world.commands(RefundAtProvider)) == 1


async def test_a_refund_above_the_available_balance_is_refused(make_world) -> None:
    world = make_world()
    world.ledger.available_minor = 150_000
    payment = await world.completed()
    reply = await world.refund(payment, 2000)
    assert reply.error is not None and reply.error.code == "insufficient_balance"
    assert reply.error.param == "amount" and "1500 XOF" in reply.error.message
    assert world.store.refunds == {} and world.commands(RefundAtProvider) == []


async def test_a_refund_is_refused_when_the_ledger_does_not_answer(make_world) -> None:
    world = make_world()
    world.ledger.unavailable = True
    reply = await world.refund(await world.completed(), 1000)
    assert reply.error is not None and reply.error.code == "balance_unavailable"
    assert world.store.refunds == {}


@pytest.mark.parametrize(
    ("amount", "code"),
    [(0, "amount_invalid"), (3001, "refund_exceeds_payment")],
)
async def test_a_refund_outside_the_payment_is_refused(make_world, amount: int, code: str) -> None:
    world = make_world()
    reply = await world.refund(await world.completed(), amount)
    assert reply.error is not None and reply.error.code == code
    assert world.ledger.holds == {}


async def test_only_a_completed_payment_is_refundable(make_world) -> None:
    world = make_world()
    reply = await world.refund(await world.create(), 1000)
    assert reply.error is not None and reply.error.code == "payment_not_refundable"


async def test_pending_refunds_count_against_what_is_left(make_world) -> None:
    world = make_world()
    payment = await world.completed()
    await world.refund(payment, 2000)
    rest = await world.refund(payment)
    assert rest.refund is not None and rest.refund.amount == 1000
    nothing_left = await world.refund(payment)
    assert nothing_left.error is not None and nothing_left.error.code == "refund_already_pending"


async def test_a_refund_that_lost_a_race_under_the_lock_releases_its_hold(make_world) -> None:
    world = make_world()
    payment = await world.completed()

    async def another_refund_meanwhile() -> None:
        assert (await world.refund(payment, 2500)).created

    world.ledger.meanwhile = another_refund_meanwhile
    reply = await world.refund(payment, 1000)
    assert reply.error is not None and reply.error.code == "refund_exceeds_payment"
    [release] = [m for m in world.store.published("ledger") if isinstance(m, ReleaseRefundHold)]
    assert release.refund_id in world.ledger.holds
    assert len(world.store.refunds) == 1


async def test_a_refund_that_could_not_be_recorded_releases_its_hold(make_world) -> None:
    from dataclasses import replace

    from payment_orchestrator.adapters.memory import IntegrityError
    from payment_orchestrator.domain.payment import refund_id_for

    world = make_world()
    payment = await world.completed()
    await world.refund(payment, 500, idempotency_key="other")
    [taken] = world.store.refunds.values()

    async def the_id_is_taken_meanwhile() -> None:
        clash = refund_id_for(payment.id, "k")
        world.store.refunds[clash] = replace(taken, id=clash)

    world.ledger.meanwhile = the_id_is_taken_meanwhile
    with pytest.raises(IntegrityError):
        await world.refund(payment, 1000, idempotency_key="k")
    [release] = [m for m in world.store.published("ledger") if isinstance(m, ReleaseRefundHold)]
    assert release.refund_id == refund_id_for(payment.id, "k")


async def test_settled_refunds_count_and_the_last_one_refunds_the_payment(make_world) -> None:
    world = make_world()
    payment = await world.completed()
    partly = await world.settle_refund(await world.refund(payment, 1000))
    assert partly.status is S.COMPLETED and partly.refunded_amount == 1000
    full = await world.settle_refund(await world.refund(payment))
    assert full.status is S.REFUNDED and full.refunded_amount == 3000
    # A full refund is announced by its refund event (the payment inside says refunded).
    assert world.events(payment)[-2:] == ["collect.refund.completed"] * 2
    [last] = world.store.published("collect.refund.completed")[-1:]
    assert last.payment.status == "refunded"
    after = await world.refund(payment, 1)
    assert after.error is not None and after.error.code == "payment_not_refundable"


async def test_a_failed_refund_leaves_the_payment_as_it_was(make_world) -> None:
    world = make_world()
    payment = await world.completed()
    failed = await world.settle_refund(await world.refund(payment, 1000), status="failed")
    assert failed.status is S.COMPLETED and failed.refunded_amount == 0
    assert world.events(payment)[-1] == "collect.refund.failed"
    assert (await world.refund(payment)).refund is not None


async def test_a_second_outcome_for_a_settled_refund_is_ignored(make_world) -> None:
    world = make_world()
    payment = await world.completed()
    reply = await world.refund(payment, 1000)
    await world.settle_refund(reply)
    again = await world.settle_refund(reply, status="failed")
    assert again.refunded_amount == 1000
    assert world.events(payment).count("collect.refund.failed") == 0


# ---------------------------------------------------------------- reconciliation door


async def test_the_door_answers_the_days_collected_payments_and_paid_refunds(make_world) -> None:
    from datetime import timedelta

    from fluxpay_common.messages import SettledMovementsQuery

    world = make_world()
    paid = await world.completed()
    await world.settle_refund(await world.refund(paid, 1000))
    await world.create()  # still open: not collected
    window = SettledMovementsQuery(
        start=world.store.now - timedelta(hours=1), end=world.store.now + timedelta(hours=1)
    )
    reply = await world.send(window)
    movements = {(m["kind"], m["amount_minor"]) for m in reply.data["movements"]}
    assert movements == {("payment", 300_000), ("refund", 100_000)}
    by_id = await world.send(SettledMovementsQuery(payment_ids=[paid.id]))
    assert [m["payment_id"] for m in by_id.data["movements"]] == [str(paid.id)]
    tomorrow = await world.send(
        SettledMovementsQuery(start=window.end, end=window.end + timedelta(days=1))
    )
    assert tomorrow.data["movements"] == []


# ---------------------------------------------------------------- every provider report


START = {
    S.PENDING: [],
    S.PROCESSING: ["processing"],
    S.AWAITING_PAYMENT: ["awaiting_payment"],
    S.COMPLETED: ["completed"],
    S.FAILED: ["failed"],
}
REPORTS = ["processing", "awaiting_otp", "awaiting_payment", "completed", "failed", "cancelled"]


@pytest.mark.parametrize("start", list(START))
@pytest.mark.parametrize("reported", REPORTS)
async def test_every_report_in_every_status_does_what_the_table_says(
    make_world, start: S, reported: str
) -> None:
    from payment_orchestrator.domain.state_machine import Transition, decide, provider_trigger

    world = make_world()
    payment = await world.create()
    for step in START[start]:
        payment = await world.report(payment, step)
    assert payment.status is start
    before = len(world.events(payment))
    after = await world.report(payment, reported)
    decision = decide(start, provider_trigger(reported))  # type: ignore[arg-type]
    if isinstance(decision, Transition):
        assert after.status is decision.status
        announced = world.events(payment)[before:]
        assert announced == ([decision.event] if decision.changed and decision.event else [])
    else:
        assert after.status is start and world.events(payment)[before:] == []


@pytest.mark.parametrize(
    ("metadata", "heard_by_gateway"),
    [
        ({"payment_link_id": "l1", "payment_link_use_id": str(uuid.uuid4())}, True),
        ({"due_id": str(uuid.uuid4()), "period": "2026-11"}, True),
        ({"order": "42"}, False),
        (None, False),
    ],
)
@pytest.mark.parametrize("outcome", ["completed", "failed", "cancel", "expired"])
async def test_only_a_link_or_due_payments_outcome_is_copied_to_the_gateway(
    make_world, metadata, heard_by_gateway: bool, outcome: str
) -> None:
    world = make_world()
    payment = await world.create(metadata=metadata or {})
    await world.report(payment, "processing")
    if outcome == "cancel":
        await world.send(CancelPayment(reference_or_id=payment.reference, **world.scope()))
    elif outcome == "expired":
        world.expire_all()
        await handlers.expire_due(world.deps)
    else:
        await world.report(payment, outcome)
    event_type = world.events(payment)[-1]
    [original] = [m for m in world.store.published(event_type) if m.payment.id == payment.id]
    copies = [m for m in world.store.published("gateway.") if m.payment.id == payment.id]
    if not heard_by_gateway:
        assert copies == []
        return
    [copy] = copies
    key = f"gateway.payment.{event_type.removeprefix('collect.payment.')}"
    assert [p.routing_key for p in world.store.outbox if p.message is copy] == [key]
    assert copy.type == event_type and copy.payment == original.payment
    assert copy.message_id == uuid.uuid5(original.message_id, "gateway")
