"""Property: any sequence of payments, refunds and redelivered events keeps the books true.

A hypothesis state machine publishes wire events to the handler over in-memory books that
enforce the database's invariants, and checks after every step that every entry balances,
each event and each payment or refund is booked once, every account's running balance
equals the sum of its postings, and the balances match a model computed independently.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass

from fluxpay_testing.ledger import payment_event, payment_view, refund_event
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fluxpay_common.messages import DomainEvent, Environment, PaymentView
from ledger.adapters.memory import MemoryStore
from ledger.domain.accounts import Account, AccountKind, natural_balance
from ledger.domain.books import raw_balances
from ledger.domain.fees import FeeRule, FeeSchedule, platform_fee
from ledger.service_layer.handlers import handle_event

MERCHANTS = [uuid.UUID(int=i + 1) for i in range(3)]
FEES = FeeSchedule(
    default=FeeRule(percent_bp=150),
    operators={"wave": FeeRule(percent_bp=100, fixed_minor=2_500)},
    merchants={MERCHANTS[2]: FeeRule(percent_bp=0, fixed_minor=100)},
)
ENVIRONMENTS: list[Environment] = ["test", "live"]
NO_MONEY_TYPES = ["collect.payment.processing", "collect.payment.failed", "collect.payment.expired"]


@dataclass
class Completed:
    view: PaymentView
    merchant_id: uuid.UUID
    provider: str
    refundable: int


class BooksMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store = MemoryStore()
        self.published: list[DomainEvent] = []
        self.completed: list[Completed] = []
        self.expected: Counter[tuple[object, ...]] = Counter()
        self.bookings = 0

    def teardown(self) -> None:
        self.loop.close()

    def publish(self, event: DomainEvent) -> bool:
        self.published.append(event)
        entry = self.loop.run_until_complete(handle_event(event, self.store.transaction, FEES))
        self.bookings += entry is not None
        return entry is not None

    @rule(
        merchant=st.sampled_from(MERCHANTS),
        environment=st.sampled_from(ENVIRONMENTS),
        currency=st.sampled_from(["XOF", "RWF"]),
        operator=st.sampled_from(["mtn", "wave", None]),
        provider=st.sampled_from(["sandbox", "novasend"]),
        amount=st.integers(min_value=1, max_value=5_000_000),
        psp_fee_permille=st.none() | st.integers(min_value=0, max_value=1000),
        late=st.booleans(),
    )
    def complete_payment(
        self, merchant, environment, currency, operator, provider, amount, psp_fee_permille, late
    ) -> None:
        view = payment_view(
            amount=amount, currency=currency, operator=operator, environment=environment
        )
        gross = amount * 100
        psp_fee = None if psp_fee_permille is None else gross * psp_fee_permille // 1000
        event = payment_event(
            view, merchant, provider=provider, fee_minor=psp_fee, late_success=late
        )
        assert self.publish(event), "a first completion always books"
        fee = platform_fee(FEES, merchant, operator, gross)
        book = (environment, currency)
        self.expected[(*book, AccountKind.MERCHANT_AVAILABLE, str(merchant))] += gross - fee
        self.expected[(*book, AccountKind.PLATFORM_FEE_REVENUE, None)] += fee
        self.expected[(*book, AccountKind.PSP_CLEARING, provider)] += gross - (psp_fee or 0)
        self.expected[(*book, AccountKind.PSP_FEE_EXPENSE, None)] += psp_fee or 0
        self.completed.append(Completed(view, merchant, provider, amount))

    @precondition(lambda self: any(c.refundable for c in self.completed))
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        open_ = [c for c in self.completed if c.refundable]
        payment = data.draw(st.sampled_from(open_))
        amount = data.draw(st.integers(min_value=1, max_value=payment.refundable))
        event = refund_event(payment.view, payment.merchant_id, amount, provider=payment.provider)
        assert self.publish(event), "a first refund completion always books"
        payment.refundable -= amount
        book = (payment.view.environment, payment.view.currency)
        self.expected[(*book, AccountKind.MERCHANT_AVAILABLE, str(payment.merchant_id))] -= (
            amount * 100
        )
        self.expected[(*book, AccountKind.PSP_CLEARING, payment.provider)] -= amount * 100

    @precondition(lambda self: self.published)
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        event = data.draw(st.sampled_from(self.published))
        assert not self.publish(event), "a redelivered event books nothing"

    @precondition(lambda self: self.completed)
    @rule(data=st.data())
    def complete_again_under_a_new_event_id(self, data: st.DataObject) -> None:
        payment = data.draw(st.sampled_from(self.completed))
        event = payment_event(
            payment.view, payment.merchant_id, provider=payment.provider, late_success=True
        )
        assert not self.publish(event), "a payment is booked once"

    @precondition(lambda self: self.completed)
    @rule(data=st.data(), event_type=st.sampled_from(NO_MONEY_TYPES), failed_refund=st.booleans())
    def events_that_move_no_money(self, data, event_type, failed_refund) -> None:
        payment = data.draw(st.sampled_from(self.completed))
        if failed_refund:
            event = refund_event(payment.view, payment.merchant_id, 1, completed=False)
        else:
            event = payment_event(payment.view, payment.merchant_id, type=event_type)
        assert not self.publish(event)

    @invariant()
    def every_entry_balances(self) -> None:
        for entry in self.store.entries:
            assert len(entry.postings) >= 2
            assert sum(p.amount_minor for p in entry.postings) == 0

    @invariant()
    def each_event_and_each_payment_or_refund_is_booked_once(self) -> None:
        entries = self.store.entries
        assert len({e.event_id for e in entries}) == len(entries) == self.bookings
        assert len({e.business_key for e in entries}) == len(entries)
        assert self.store.inbox == {e.message_id for e in self.published}

    @invariant()
    def running_balances_equal_the_sum_of_postings(self) -> None:
        summed = raw_balances(self.store.entries)
        assert {a: b for a, b in self.store.balances.items() if b} == {
            a: b for a, b in summed.items() if b
        }

    @invariant()
    def balances_match_the_model(self) -> None:
        actual = {
            _key(account): natural_balance(account, balance)
            for account, balance in self.store.balances.items()
        }
        for account_key, balance in actual.items():
            assert balance == self.expected.get(account_key, 0), account_key
        assert {k for k, v in self.expected.items() if v} <= set(actual)
        for account, balance in self.store.balances.items():
            if account.kind is AccountKind.REFUNDS:
                assert balance == 0


def _key(account: Account) -> tuple[object, ...]:
    return (account.environment, account.currency, account.kind, account.qualifier)


BooksMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
test_books_stay_balanced_whatever_the_sequence = BooksMachine.TestCase
