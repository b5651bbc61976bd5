"""Journal entries built from money-moving facts: legs, signs, fees, refusals."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from fluxpay_testing.ledger import NOW

from ledger.domain.accounts import AccountKind, Chart, natural_balance
from ledger.domain.books import (
    EntryKind,
    JournalEntry,
    PaymentCompleted,
    Posting,
    RefundCompleted,
    UnbalancedEntry,
    UnbookableEvent,
    book,
    entry_id_for,
    raw_balances,
)
from ledger.domain.fees import FeeRule, FeeSchedule

MERCHANT = uuid.uuid4()
FEES = FeeSchedule(default=FeeRule(percent_bp=150))
CHART = Chart("live", "XOF")


def _payment(**changes: object) -> PaymentCompleted:
    fact = PaymentCompleted(
        event_id=uuid.uuid4(),
        payment_id=uuid.uuid4(),
        merchant_id=MERCHANT,
        environment="live",
        currency="XOF",
        provider="novasend",
        operator="mtn",
        reference="order-1",
        amount_minor=300_000,
        psp_fee_minor=None,
        late_success=False,
        completed_at=NOW,
    )
    return dataclasses.replace(fact, **changes)  # type: ignore[arg-type]


def _refund(amount_minor: int = 100_000) -> RefundCompleted:
    return RefundCompleted(
        event_id=uuid.uuid4(),
        refund_id=uuid.uuid4(),
        payment_id=uuid.uuid4(),
        merchant_id=MERCHANT,
        environment="live",
        currency="XOF",
        provider="novasend",
        reference="refund-1",
        amount_minor=amount_minor,
        completed_at=NOW,
    )


def _legs(entry: JournalEntry) -> list[tuple[str, int]]:
    return [(p.account.code, p.amount_minor) for p in entry.postings]


def test_completed_payment_credits_the_merchant_net_of_the_platform_fee() -> None:
    entry = book(_payment(), FEES)
    assert _legs(entry) == [
        ("psp_clearing:novasend", 300_000),
        (f"merchant_available:{MERCHANT}", -295_500),
        ("platform_fee_revenue", -4_500),
    ]
    assert entry.kind is EntryKind.PAYMENT and entry.refund_id is None


def test_psp_fee_is_an_expense_taken_out_of_clearing() -> None:
    entry = book(_payment(psp_fee_minor=3_000), FEES)
    assert _legs(entry)[3:] == [("psp_fee_expense", 3_000), ("psp_clearing:novasend", -3_000)]
    balances = raw_balances([entry])
    assert balances[CHART.psp_clearing("novasend")] == 297_000
    assert sum(p.amount_minor for p in entry.postings) == 0


def test_a_fee_the_customer_paid_on_top_is_booked_as_what_the_customer_was_charged() -> None:
    # Novasend: amount 3 000, fee 60 borne by the customer, chargedAmount 3 060.
    entry = book(_payment(psp_fee_minor=6_000, charged_amount_minor=306_000), FEES)
    assert _legs(entry) == [
        ("psp_clearing:novasend", 306_000),
        (f"merchant_available:{MERCHANT}", -295_500),
        ("platform_fee_revenue", -4_500),
        ("psp_fee_recovered", -6_000),
        ("psp_fee_expense", 6_000),
        ("psp_clearing:novasend", -6_000),
    ]
    balances = raw_balances([entry])
    # The PSP settles the amount: it kept its fee out of what the customer paid.
    assert balances[CHART.psp_clearing("novasend")] == 300_000
    assert balances[CHART.merchant_available(MERCHANT)] == -295_500
    assert sum(p.amount_minor for p in entry.postings) == 0


def test_a_charged_amount_below_the_amount_still_books_the_gross() -> None:
    assert _legs(book(_payment(charged_amount_minor=299_999), FEES)) == _legs(
        book(_payment(), FEES)
    )


def test_zero_fees_write_no_zero_legs() -> None:
    free = FeeSchedule(default=FeeRule())
    entry = book(_payment(psp_fee_minor=0), free)
    assert _legs(entry) == [
        ("psp_clearing:novasend", 300_000),
        (f"merchant_available:{MERCHANT}", -300_000),
    ]


def test_late_success_books_like_any_completed_payment_and_says_so() -> None:
    late = book(_payment(late_success=True), FEES)
    on_time = book(_payment(), FEES)
    assert late.late_success and _legs(late) == _legs(on_time)


def test_refund_moves_from_the_merchant_through_refunds_to_clearing() -> None:
    entry = book(_refund(100_000), FEES)
    assert _legs(entry) == [
        (f"merchant_available:{MERCHANT}", 100_000),
        ("refunds", -100_000),
        ("refunds", 100_000),
        ("psp_clearing:novasend", -100_000),
    ]
    assert raw_balances([entry])[CHART.refunds()] == 0
    assert entry.business_key == (EntryKind.REFUND, entry.refund_id)


def test_merchant_available_reads_positive_after_a_payment() -> None:
    entry = book(_payment(), FEES)
    account = CHART.merchant_available(MERCHANT)
    assert natural_balance(account, raw_balances([entry])[account]) == 295_500
    assert account.merchant_id == MERCHANT and account.kind is AccountKind.MERCHANT_AVAILABLE


def test_the_same_event_always_yields_the_same_entry() -> None:
    fact = _payment()
    assert book(fact, FEES) == book(fact, FEES)
    assert book(fact, FEES).id == entry_id_for(fact.event_id)


@pytest.mark.parametrize(
    "changes", [{"amount_minor": 0}, {"amount_minor": -100}, {"psp_fee_minor": -1}]
)
def test_impossible_payments_are_refused(changes: dict[str, int]) -> None:
    with pytest.raises(UnbookableEvent):
        book(_payment(**changes), FEES)


def test_a_refund_of_nothing_is_refused() -> None:
    with pytest.raises(UnbookableEvent):
        book(_refund(0), FEES)


@pytest.mark.parametrize(
    "postings",
    [
        (Posting(CHART.platform_fee_revenue(), 10),),
        (Posting(CHART.platform_fee_revenue(), 10), Posting(CHART.psp_fee_expense(), -9)),
        (Posting(CHART.platform_fee_revenue(), 0), Posting(CHART.psp_fee_expense(), 0)),
        (Posting(CHART.psp_fee_expense(), 5), Posting(Chart("live", "RWF").refunds(), -5)),
        (Posting(CHART.psp_fee_expense(), 5), Posting(Chart("test", "XOF").refunds(), -5)),
    ],
)
def test_an_unbalanced_entry_cannot_be_built(postings: tuple[Posting, ...]) -> None:
    entry = book(_payment(), FEES)
    with pytest.raises(UnbalancedEntry):
        dataclasses.replace(entry, postings=postings)
