"""Refund holds over in-memory books: placed when covered, ended by the refund's outcome."""

from __future__ import annotations

import uuid

from fluxpay_testing.ledger import payment_event, payment_view, refund_event

from fluxpay_common.messages import PaymentView, ReleaseRefundHold, ReserveRefund
from ledger.adapters.memory import MemoryStore
from ledger.domain.accounts import Chart
from ledger.domain.fees import FeeSchedule
from ledger.domain.holds import HoldStatus
from ledger.service_layer.handlers import handle_event
from ledger.service_layer.holds import release_hold, reserve_refund

FEES = FeeSchedule()


def _reserve(payment: PaymentView, merchant: uuid.UUID, amount: int, **ids: uuid.UUID):
    return ReserveRefund(
        merchant_id=merchant,
        environment="test",
        refund_id=ids.get("refund_id", uuid.uuid4()),
        payment_id=payment.id,
        currency="XOF",
        amount_minor=amount * 100,
    )


async def _paid(store: MemoryStore, merchant: uuid.UUID, amount: int = 1000) -> PaymentView:
    payment = payment_view(amount=amount)
    await handle_event(payment_event(payment, merchant), store.transaction, FEES)
    return payment


def _available(store: MemoryStore, merchant: uuid.UUID) -> int:
    account = Chart("test", "XOF").merchant_available(merchant)
    held = sum(r.amount_minor for r, status in store.holds.values() if status is HoldStatus.HELD)
    return -store.balances.get(account, 0) - held


async def test_refunds_are_held_until_the_available_balance_is_spent() -> None:
    store, merchant = MemoryStore(), uuid.uuid4()
    payment = await _paid(store, merchant, amount=1000)  # 985 XOF available after the fee
    first = await reserve_refund(_reserve(payment, merchant, 600), store.transaction)
    second = await reserve_refund(_reserve(payment, merchant, 400), store.transaction)
    assert first.held and first.available_minor == 98_500
    assert not second.held and second.available_minor == 38_500
    assert _available(store, merchant) == 38_500


async def test_a_retried_reservation_holds_once() -> None:
    store, merchant = MemoryStore(), uuid.uuid4()
    payment = await _paid(store, merchant)
    request = _reserve(payment, merchant, 500)
    assert (await reserve_refund(request, store.transaction)).held
    again = await reserve_refund(request, store.transaction)
    assert again.held and again.available_minor == 98_500
    assert len(store.holds) == 1 and _available(store, merchant) == 48_500


async def test_a_booked_refund_consumes_its_hold_and_a_failed_one_releases_it() -> None:
    store, merchant = MemoryStore(), uuid.uuid4()
    payment = await _paid(store, merchant)
    booked, failed = uuid.uuid4(), uuid.uuid4()
    await reserve_refund(_reserve(payment, merchant, 300, refund_id=booked), store.transaction)
    await reserve_refund(_reserve(payment, merchant, 200, refund_id=failed), store.transaction)
    assert _available(store, merchant) == 48_500
    for refund_id, completed in ((booked, True), (failed, False)):
        event = refund_event(
            payment, merchant, 300 if completed else 200, refund_id=refund_id, completed=completed
        )
        await handle_event(event, store.transaction, FEES)
    assert store.holds[booked][1] is HoldStatus.CONSUMED
    assert store.holds[failed][1] is HoldStatus.RELEASED
    # The booked refund now weighs through its entry, the failed one not at all.
    assert _available(store, merchant) == 68_500


async def test_a_released_hold_frees_the_amount_and_is_never_held_again() -> None:
    store, merchant = MemoryStore(), uuid.uuid4()
    payment = await _paid(store, merchant)
    request = _reserve(payment, merchant, 900)
    await reserve_refund(request, store.transaction)
    release = ReleaseRefundHold(
        merchant_id=merchant, environment="test", refund_id=request.refund_id
    )
    await release_hold(release, store.transaction)
    assert _available(store, merchant) == 98_500
    assert not (await reserve_refund(request, store.transaction)).held
