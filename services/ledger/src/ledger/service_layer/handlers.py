"""One handler for every domain event on `ledger.events`; the events that move money book.

Exactly once per event: the inbox claim, the refund hold's end, the entry and its postings
commit together (one statement once the accounts are known), and a second entry for the
same event, payment or refund is not written (the database refuses it in any case).
"""

from __future__ import annotations

from typing import assert_never

from fluxpay_common.logging import get_logger
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
from ledger.service_layer.ports import OpenBooks, Recorded

log = get_logger(__name__)
CONSUMER = "ledger"


async def handle_event(
    event: DomainEvent, open_books: OpenBooks, fees: FeeSchedule
) -> JournalEntry | None:
    """Book the event if it moved money; the entry written, or None (nothing to book)."""
    fact = fact_from(event)
    entry = None if fact is None else book(fact, fees)
    # The refund's hold ends with the refund, with the entry that books it.
    hold = (event.refund.id, hold_outcome(event.type)) if isinstance(event, RefundEvent) else None
    async with open_books() as books:
        recorded = await books.record(event.message_id, CONSUMER, entry=entry, hold=hold)
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
            return entry
        case Recorded.NOTHING_TO_BOOK:
            pass
        case _:
            assert_never(recorded)
    return None


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
