"""The handler over in-memory books: what books, what is only recorded, what is refused."""

from __future__ import annotations

import uuid

import pytest
from fluxpay_testing.ledger import payment_event, payment_view, refund_event

from fluxpay_common.messages import MerchantEndpointChanged
from ledger.adapters.memory import MemoryStore
from ledger.domain.books import EntryKind, UnbookableEvent
from ledger.domain.fees import FeeSchedule
from ledger.service_layer.handlers import handle_event, handle_events

FEES = FeeSchedule()


async def test_completed_payment_books_one_entry_and_its_redelivery_nothing() -> None:
    store, merchant = MemoryStore(), uuid.uuid4()
    event = payment_event(payment_view(), merchant, fee_minor=3_000)
    first = await handle_event(event, store.transaction, FEES)
    again = await handle_event(event, store.transaction, FEES)
    assert first is not None and again is None
    assert [e.event_id for e in store.entries] == [event.message_id]
    assert store.inbox == {event.message_id}


@pytest.mark.parametrize(
    "event_type",
    [
        "collect.payment.created",
        "collect.payment.processing",
        "collect.payment.failed",
        "collect.payment.cancelled",
        "collect.payment.expired",
    ],
)
async def test_payment_events_that_move_no_money_are_only_recorded(event_type: str) -> None:
    store = MemoryStore()
    event = payment_event(payment_view(status="processing"), uuid.uuid4(), type=event_type)  # type: ignore[arg-type]
    assert await handle_event(event, store.transaction, FEES) is None
    assert store.entries == [] and store.inbox == {event.message_id}


async def test_failed_refund_and_endpoint_change_book_nothing() -> None:
    store, merchant = MemoryStore(), uuid.uuid4()
    failed = refund_event(payment_view(), merchant, 1000, completed=False)
    endpoint = MerchantEndpointChanged(
        merchant_id=merchant, webhook_url=None, webhook_secrets_sealed=[]
    )
    for event in (failed, endpoint):
        assert await handle_event(event, store.transaction, FEES) is None
    assert store.entries == [] and store.inbox == {failed.message_id, endpoint.message_id}


async def test_second_completion_of_a_payment_under_a_new_event_id_books_nothing() -> None:
    store, merchant, payment = MemoryStore(), uuid.uuid4(), payment_view()
    await handle_event(payment_event(payment, merchant), store.transaction, FEES)
    late = payment_event(payment, merchant, late_success=True)
    assert await handle_event(late, store.transaction, FEES) is None
    assert len(store.entries) == 1 and late.message_id in store.inbox


async def test_completed_refund_books_a_refund_entry_for_its_payment() -> None:
    store, merchant, payment = MemoryStore(), uuid.uuid4(), payment_view(amount=5000)
    event = refund_event(payment, merchant, 2000)
    entry = await handle_event(event, store.transaction, FEES)
    assert entry is not None and entry.kind is EntryKind.REFUND
    assert entry.payment_id == payment.id and entry.refund_id == event.refund.id
    assert entry.postings[0].amount_minor == 200_000


async def test_event_without_provider_is_refused_and_leaves_no_trace() -> None:
    store = MemoryStore()
    event = payment_event(payment_view(), uuid.uuid4(), provider=None)
    with pytest.raises(UnbookableEvent):
        await handle_event(event, store.transaction, FEES)
    assert store.inbox == set() and store.entries == []


async def test_a_batch_books_each_event_once_and_its_duplicates_nothing() -> None:
    store, merchant, payment = MemoryStore(), uuid.uuid4(), payment_view()
    completed = payment_event(payment, merchant)
    late = payment_event(payment, merchant, late_success=True)
    other = payment_event(payment_view(), merchant)
    booked = await handle_events([completed, completed, late, other], store.transaction, FEES)
    assert [e.event_id for e in booked] == [completed.message_id, other.message_id]
    assert [e.event_id for e in store.entries] == [completed.message_id, other.message_id]
    assert store.inbox == {completed.message_id, late.message_id, other.message_id}


async def test_an_unbookable_event_refuses_its_whole_batch_before_anything_is_written() -> None:
    store, merchant = MemoryStore(), uuid.uuid4()
    good = payment_event(payment_view(), merchant)
    nameless = payment_event(payment_view(), merchant, provider=None)
    with pytest.raises(UnbookableEvent):
        await handle_events([good, nameless], store.transaction, FEES)
    assert store.inbox == set() and store.entries == []
