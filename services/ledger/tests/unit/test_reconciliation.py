"""Comparing the books with another system's list of movements."""

from __future__ import annotations

import uuid

from ledger.domain.books import EntryKind
from ledger.domain.reconciliation import Movement, compare, day_differences, split_keys

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
    assert "expected=100000 XOF live booked=-" in difference.describe()


def test_a_payment_booked_in_the_other_environment_is_a_difference() -> None:
    test_books = Movement(EntryKind.PAYMENT, PAYMENT, None, "test", "XOF", 300_000)
    [difference] = compare([_payment()], [test_books])
    assert difference.kind == "environment_differs"


def test_psp_fees_are_compared_only_where_both_sides_state_them() -> None:
    stated = Movement(EntryKind.PAYMENT, PAYMENT, None, "live", "XOF", 300_000, psp_fee_minor=0)
    booked_fee = Movement(
        EntryKind.PAYMENT, PAYMENT, None, "live", "XOF", 300_000, psp_fee_minor=3_000
    )
    assert compare([_payment()], [booked_fee]) == []
    [difference] = compare([stated], [booked_fee])
    assert difference.kind == "psp_fee_differs"
    assert "(psp fee 0)" in difference.describe() and "(psp fee 3000)" in difference.describe()


def test_an_entry_filed_under_a_neighbouring_day_is_left_to_that_day() -> None:
    # The orchestrator settled the refund at 23:59:59.999; its entry is stamped 00:00:00.001.
    early_refund = _refund()
    # Today's run: the orchestrator expects the refund, its entry was looked up by key.
    assert day_differences([early_refund], [early_refund], filed_elsewhere=set()) == []
    # Tomorrow's run: the entry is in the books' day, the orchestrator filed it yesterday.
    assert day_differences([], [early_refund], filed_elsewhere={early_refund.key}) == []


def test_an_entry_the_other_system_never_completed_stays_a_difference() -> None:
    stray = _payment(payment_id=uuid.uuid4())
    elsewhere = {_payment().key}
    [difference] = day_differences([_payment()], [_payment(), stray], filed_elsewhere=elsewhere)
    assert difference.kind == "not_expected" and difference.key == stray.key


def test_keys_split_into_payment_and_refund_ids() -> None:
    other = uuid.uuid4()
    keys = [_payment().key, _refund().key, _payment(payment_id=other).key]
    assert split_keys(keys) == ([PAYMENT, other], [REFUND])
