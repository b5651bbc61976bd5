"""One handler for every domain event on `ledger.events`; the events that move money book.

Events come in batches (`fluxpay_common.batch_consumer`): a batch is booked at once, one
statement once the accounts are known, one commit. Exactly once per event: each event's
inbox claim, its refund hold's end, its entry and postings commit together, and a second
entry for the same event, payment or refund is not written (the database refuses it in any
case). An event the books cannot take fails the batch before anything is written; the
consumer then books the batch event by event, and that one alone is dead-lettered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import assert_never

from fluxpay_common.logging import bound_context, get_logger
from fluxpay_common.messages import (
    DomainEvent,
    MerchantEndpointChanged,
    PaymentEvent,
    PaymentEventType,
    RefundEvent,
    RefundEventType,
)
from fluxpay_common.money import to_minor
from ledger.domain.books import (
    Fact,
    JournalEntry,
    PaymentCompleted,
    RefundCompleted,
    UnbookableEvent,
    book,
)
from ledger.domain.fees import FeeSchedule
from ledger.domain.holds import HoldStatus
from ledger.service_layer.ports import Booking, OpenBooks, Recorded

log = get_logger(__name__)
CONSUMER = "ledger"


async def handle_event(
    event: DomainEvent, open_books: OpenBooks, fees: FeeSchedule
) -> JournalEntry | None:
    """Book the event if it moved money; the entry written, or None (nothing to book)."""
    booked = await handle_events([event], open_books, fees)
    return booked[0] if booked else None


async def handle_events(
    events: Sequence[DomainEvent], open_books: OpenBooks, fees: FeeSchedule
) -> list[JournalEntry]:
    """Book the events that moved money, in delivery order, in one transaction; the entries
    written. Raises `UnbookableEvent` / `UnbalancedEntry` before writing anything."""
    unique = _first_of_each(events)
    bookings = [booking_of(event, fees) for event in unique]
    async with open_books() as books:
        recorded = await books.record(bookings, CONSUMER)
    for event, booking, outcome in zip(unique, bookings, recorded, strict=True):
        with bound_context(**_ids(event)):
            _log(event, booking.entry, outcome)
    if len(unique) < len(events):  # handled with the first: as one by one, once
        log.info("event_already_handled", duplicates=len(events) - len(unique))
    return [
        b.entry
        for b, outcome in zip(bookings, recorded, strict=True)
        if b.entry is not None and outcome is Recorded.BOOKED
    ]


def booking_of(event: DomainEvent, fees: FeeSchedule) -> Booking:
    """What recording the event writes: its entry if it moved money, the hold it ends."""
    fact = fact_from(event)
    entry = None if fact is None else book(fact, fees)
    # The refund's hold ends with the refund, with the entry that books it.
    hold = (event.refund.id, hold_outcome(event.type)) if isinstance(event, RefundEvent) else None
    return Booking(event.message_id, entry, hold)


def _log(event: DomainEvent, entry: JournalEntry | None, recorded: Recorded) -> None:
    match recorded:
        case Recorded.HANDLED_BEFORE:
            log.info("event_already_handled", event_type=event.type)
        case Recorded.ALREADY_BOOKED:
            # Another event already booked this payment or refund: money moves once.
            assert entry is not None
            log.warning("already_booked_under_another_event", kind=entry.kind.value)
        case Recorded.BOOKED:
            assert entry is not None
            log.info("entry_booked", kind=entry.kind.value, entry_id=str(entry.id))
        case Recorded.NOTHING_TO_BOOK:
            pass
        case _:
            assert_never(recorded)


def _first_of_each(events: Sequence[DomainEvent]) -> list[DomainEvent]:
    """A publisher's duplicate may share the batch: the first of each message id."""
    seen: set[object] = set()
    unique = []
    for event in events:
        if event.message_id not in seen:
            seen.add(event.message_id)
            unique.append(event)
    return unique


def _ids(event: DomainEvent) -> dict[str, object]:
    """What each log line of the event carries, as one by one the consumer bound it."""
    payment = getattr(event, "payment", None)
    return {
        "message_id": event.message_id,
        "correlation_id": event.correlation_id or None,
        "payment_id": None if payment is None else payment.id,
    }


def fact_from(event: DomainEvent) -> Fact | None:
    """The money movement an event reports, or None for events that move no money."""
    match event:
        case PaymentEvent() if moves_money(event.type):
            return _payment_completed(event)
        case RefundEvent() if moves_money(event.type):
            return _refund_completed(event)
        case PaymentEvent() | RefundEvent() | MerchantEndpointChanged():
            return None
        case _:
            assert_never(event)


def moves_money(event_type: PaymentEventType | RefundEventType) -> bool:
    """Listed exhaustively, so a new event type is a type error here until decided."""
    match event_type:
        case "collect.payment.completed" | "collect.refund.completed":
            return True
        case (
            "collect.payment.created"
            | "collect.payment.processing"
            | "collect.payment.failed"
            | "collect.payment.cancelled"
            | "collect.payment.expired"
            | "collect.refund.failed"
        ):
            return False
        case _:
            assert_never(event_type)


def hold_outcome(event_type: RefundEventType) -> HoldStatus:
    """What a settled refund does to the amount held for it."""
    match event_type:
        case "collect.refund.completed":
            return HoldStatus.CONSUMED
        case "collect.refund.failed":
            return HoldStatus.RELEASED
        case _:
            assert_never(event_type)


def _payment_completed(event: PaymentEvent) -> PaymentCompleted:
    payment = event.payment
    return PaymentCompleted(
        event_id=event.message_id,
        payment_id=payment.id,
        merchant_id=event.merchant_id,
        environment=event.environment,
        currency=payment.currency,
        provider=_provider(event.provider),
        operator=payment.operator,
        reference=payment.reference,
        amount_minor=payment.amount_minor,
        psp_fee_minor=event.fee_minor,
        charged_amount_minor=event.charged_amount_minor,
        late_success=event.late_success,
        completed_at=payment.completed_at or event.occurred_at,
    )


def _refund_completed(event: RefundEvent) -> RefundCompleted:
    refund = event.refund
    return RefundCompleted(
        event_id=event.message_id,
        refund_id=refund.id,
        payment_id=refund.payment_id,
        merchant_id=event.merchant_id,
        environment=event.environment,
        currency=refund.currency,
        provider=_provider(event.provider),
        reference=refund.reference,
        amount_minor=to_minor(refund.amount),
        completed_at=event.occurred_at,
    )


def _provider(provider: str | None) -> str:
    # Booking to a guessed clearing account would need a correcting entry; a dead letter
    # can be replayed once the event is fixed.
    if not provider:
        raise UnbookableEvent("a money-moving event names its provider")
    return provider
