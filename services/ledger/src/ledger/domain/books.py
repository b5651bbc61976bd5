"""From a fact that moved money to a balanced journal entry. Pure: no I/O, no clock.

Two facts move money today:
- a completed payment (late successes included: the PSP took the customer's money):
    Dr psp_clearing:<provider>     gross
    Cr merchant_available:<m>      gross - platform fee
    Cr platform_fee_revenue        platform fee
  and, when the PSP reported its fee:
    Dr psp_fee_expense             psp fee
    Cr psp_clearing:<provider>     psp fee
  and, when the customer was charged more than the amount (the PSP's fee on top: Novasend's
  `chargedAmount`), psp_clearing is debited what the customer was charged, not the gross:
    Dr psp_clearing:<provider>     charged (instead of gross)
    Cr psp_fee_recovered           charged - gross
- a completed refund, borne by the merchant (the platform keeps its fee), through the
  `refunds` transit account:
    Dr merchant_available:<m>      refund      Cr refunds                  refund
    Dr refunds                     refund      Cr psp_clearing:<provider>  refund

Zero legs (a zero fee) are left out rather than written. The entry id is derived from the
event id, so booking the same event twice yields the same entry.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import assert_never

from ledger.domain.accounts import Account, Chart
from ledger.domain.fees import FeeSchedule, platform_fee

ENTRY_NAMESPACE = uuid.UUID("8d0c3a4e-6f55-4c7e-9a51-2f6f0c8f3b10")


class UnbookableEvent(ValueError):
    """A money-moving event the books cannot record as it stands (it is dead-lettered)."""


class UnbalancedEntry(ValueError):
    """An entry whose postings do not sum to zero: a bug, never written."""


class EntryKind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


@dataclass(frozen=True)
class PaymentCompleted:
    event_id: uuid.UUID
    payment_id: uuid.UUID
    merchant_id: uuid.UUID
    environment: str
    currency: str
    provider: str
    operator: str | None
    reference: str
    amount_minor: int
    # What the PSP charged us for this payment, when it says.
    psp_fee_minor: int | None
    late_success: bool
    completed_at: datetime
    # What the customer paid in all (amount + a fee borne by the customer), when the PSP says.
    charged_amount_minor: int | None = None


@dataclass(frozen=True)
class RefundCompleted:
    event_id: uuid.UUID
    refund_id: uuid.UUID
    payment_id: uuid.UUID
    merchant_id: uuid.UUID
    environment: str
    currency: str
    provider: str
    reference: str
    amount_minor: int
    completed_at: datetime


Fact = PaymentCompleted | RefundCompleted


@dataclass(frozen=True)
class Posting:
    account: Account
    # Positive: debit; negative: credit.
    amount_minor: int


@dataclass(frozen=True)
class JournalEntry:
    id: uuid.UUID
    event_id: uuid.UUID
    kind: EntryKind
    payment_id: uuid.UUID
    refund_id: uuid.UUID | None
    merchant_id: uuid.UUID
    environment: str
    currency: str
    provider: str
    reference: str
    late_success: bool
    # When the money moved, per the event: the day reconciliation files the entry under.
    effective_at: datetime
    postings: tuple[Posting, ...]

    def __post_init__(self) -> None:
        check_balanced(self.postings, self.environment, self.currency)

    @property
    def business_key(self) -> tuple[EntryKind, uuid.UUID]:
        """What may be booked once whatever the event id: a payment, or a refund."""
        if self.kind is EntryKind.REFUND:
            assert self.refund_id is not None
            return (self.kind, self.refund_id)
        return (self.kind, self.payment_id)


def check_balanced(postings: Iterable[Posting], environment: str, currency: str) -> None:
    """The double-entry rule, also enforced by the database at commit."""
    legs = list(postings)
    if len(legs) < 2:
        raise UnbalancedEntry("an entry has at least two postings")
    if any(p.amount_minor == 0 for p in legs):
        raise UnbalancedEntry("a posting moves money")
    if sum(p.amount_minor for p in legs) != 0:
        raise UnbalancedEntry(f"postings sum to {sum(p.amount_minor for p in legs)}, not 0")
    if any((p.account.environment, p.account.currency) != (environment, currency) for p in legs):
        raise UnbalancedEntry("an entry stays in one environment and one currency")


def book(fact: Fact, fees: FeeSchedule) -> JournalEntry:
    match fact:
        case PaymentCompleted():
            return book_payment(fact, fees)
        case RefundCompleted():
            return book_refund(fact)
        case _:
            assert_never(fact)


def book_payment(fact: PaymentCompleted, fees: FeeSchedule) -> JournalEntry:
    if fact.amount_minor <= 0:
        raise UnbookableEvent(f"completed payment of {fact.amount_minor} minor units")
    if fact.psp_fee_minor is not None and fact.psp_fee_minor < 0:
        raise UnbookableEvent(f"negative PSP fee {fact.psp_fee_minor}")
    chart = Chart(fact.environment, fact.currency)
    gross, psp_fee = fact.amount_minor, fact.psp_fee_minor or 0
    # Money moved whatever the PSP's arithmetic: a charged amount below the gross books the
    # gross (the reconciliation shows it), it never blocks the entry.
    customer_fee = max((fact.charged_amount_minor or gross) - gross, 0)
    fee = platform_fee(fees, fact.merchant_id, fact.operator, gross)
    clearing = chart.psp_clearing(fact.provider)
    legs = [
        Posting(clearing, gross + customer_fee),  # what the customer was charged
        Posting(chart.merchant_available(fact.merchant_id), -(gross - fee)),
        Posting(chart.platform_fee_revenue(), -fee),
        Posting(chart.psp_fee_recovered(), -customer_fee),
        Posting(chart.psp_fee_expense(), psp_fee),
        Posting(clearing, -psp_fee),
    ]
    return _entry(fact, EntryKind.PAYMENT, None, fact.late_success, legs)


def book_refund(fact: RefundCompleted) -> JournalEntry:
    if fact.amount_minor <= 0:
        raise UnbookableEvent(f"completed refund of {fact.amount_minor} minor units")
    chart = Chart(fact.environment, fact.currency)
    amount, transit = fact.amount_minor, chart.refunds()
    legs = [
        Posting(chart.merchant_available(fact.merchant_id), amount),
        Posting(transit, -amount),
        Posting(transit, amount),
        Posting(chart.psp_clearing(fact.provider), -amount),
    ]
    return _entry(fact, EntryKind.REFUND, fact.refund_id, False, legs)


def _entry(
    fact: Fact,
    kind: EntryKind,
    refund_id: uuid.UUID | None,
    late_success: bool,
    legs: list[Posting],
) -> JournalEntry:
    return JournalEntry(
        id=entry_id_for(fact.event_id),
        event_id=fact.event_id,
        kind=kind,
        payment_id=fact.payment_id,
        refund_id=refund_id,
        merchant_id=fact.merchant_id,
        environment=fact.environment,
        currency=fact.currency,
        provider=fact.provider,
        reference=fact.reference,
        late_success=late_success,
        effective_at=fact.completed_at,
        postings=tuple(leg for leg in legs if leg.amount_minor != 0),
    )


def entry_id_for(event_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(ENTRY_NAMESPACE, str(event_id))


def raw_balances(entries: Iterable[JournalEntry]) -> dict[Account, int]:
    """Each account's balance: the sum of its postings (debits positive)."""
    totals: dict[Account, int] = {}
    for entry in entries:
        for posting in entry.postings:
            totals[posting.account] = totals.get(posting.account, 0) + posting.amount_minor
    return totals
