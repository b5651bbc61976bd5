"""Comparing the books with another system's list of movements."""

from __future__ import annotations

import uuid

from ledger.domain.books import EntryKind
from ledger.domain.reconciliation import Movement, compare

PAYMENT, REFUND = uuid.uuid4(), uuid.uuid4()


def _payment(amount_minor: int = 300_000, currency: str = "XOF", payment_id=PAYMENT) -> Movement:
    return Movement(EntryKind.PAYMENT, payment_id, None, "live", currency, amount_minor)


def _refund(amount_minor: int = 100_000) -> Movement:
    return Movement(EntryKind.REFUND, PAYMENT, REFUND, "live", "XOF", amount_minor)


def test_identical_lists_have_no_difference() -> None:
    assert compare([_payment(), _refund()], [_refund(), _payment()]) == []


def test_every_kind_of_difference_is_listed() -> None:
    unbooked, stray = uuid.uuid4(), uuid.uuid4()
    differences = compare(
        [_payment(), _refund(100_000), _payment(payment_id=unbooked)],
        [_payment(currency="RWF"), _refund(90_000), _payment(payment_id=stray)],
    )
    found = {(d.kind, d.key[1]) for d in differences}
    assert found == {
        ("currency_differs", PAYMENT),
        ("amount_differs", REFUND),
        ("missing_in_ledger", unbooked),
        ("not_expected", stray),
    }


def test_a_refund_and_its_payment_are_told_apart() -> None:
    # Same payment id, different kinds: a missing refund is not hidden by its payment.
    [difference] = compare([_payment(), _refund()], [_payment()])
    assert difference.kind == "missing_in_ledger" and difference.key == (EntryKind.REFUND, REFUND)
    assert "expected=100000 XOF booked=-" in difference.describe()
