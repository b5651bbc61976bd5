"""The platform fee: which rule applies, integer arithmetic, rounding half up, the cap."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.config import Settings
from ledger.domain.fees import FeeRule, FeeSchedule, platform_fee, round_half_up_div

MERCHANT = uuid.uuid4()
SCHEDULE = FeeSchedule(
    default=FeeRule(percent_bp=150),
    operators={"WAVE": FeeRule(percent_bp=100, fixed_minor=2_500)},
    merchants={MERCHANT: FeeRule(percent_bp=90)},
)


def test_default_rule_takes_150_basis_points() -> None:
    assert platform_fee(FeeSchedule(), uuid.uuid4(), "mtn", 300_000) == 4_500


def test_operator_rule_adds_its_fixed_part_and_ignores_case() -> None:
    assert platform_fee(SCHEDULE, uuid.uuid4(), "wave", 300_000) == 3_000 + 2_500


def test_merchant_override_beats_the_operator_rule() -> None:
    assert platform_fee(SCHEDULE, MERCHANT, "wave", 300_000) == 2_700


def test_unknown_or_missing_operator_falls_back_to_the_default() -> None:
    assert platform_fee(SCHEDULE, uuid.uuid4(), None, 10_000) == 150
    assert platform_fee(SCHEDULE, uuid.uuid4(), "moov", 10_000) == 150


@pytest.mark.parametrize(
    ("amount_minor", "expected"),
    [(100, 2), (99, 1), (33, 0), (34, 1), (1, 0), (0, 0)],
)
def test_fee_rounds_half_up(amount_minor: int, expected: int) -> None:
    # 150 bp of 100 is 1.5 -> 2; of 99 is 1.485 -> 1; of 34 is 0.51 -> 1; of 33 is 0.495 -> 0.
    assert platform_fee(FeeSchedule(), uuid.uuid4(), None, amount_minor) == expected


def test_fee_never_exceeds_the_payment() -> None:
    schedule = FeeSchedule(default=FeeRule(percent_bp=0, fixed_minor=5_000))
    assert platform_fee(schedule, uuid.uuid4(), None, 1_200) == 1_200


def test_negative_amount_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        platform_fee(FeeSchedule(), uuid.uuid4(), None, -1)


def test_negative_or_above_100_percent_rules_are_refused() -> None:
    with pytest.raises(ValueError):
        FeeRule(percent_bp=-1)
    with pytest.raises(ValueError):
        FeeRule(percent_bp=10_001)


@given(st.integers(min_value=0, max_value=10**15), st.integers(min_value=1, max_value=10**6))
def test_round_half_up_matches_exact_rational_rounding(numerator: int, denominator: int) -> None:
    quotient, remainder = divmod(numerator, denominator)
    expected = quotient + (1 if 2 * remainder >= denominator else 0)
    assert round_half_up_div(numerator, denominator) == expected


def test_schedule_is_read_from_fluxpay_ledger_fees(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "FLUXPAY_LEDGER_FEES",
        f'{{"default": {{"percent_bp": 200}}, "operators": {{"Orange": {{"fixed_minor": 100}}}},'
        f' "merchants": {{"{MERCHANT}": {{"percent_bp": 0}}}}}}',
    )
    fees = Settings().ledger_fees
    assert fees.default == FeeRule(percent_bp=200)
    assert fees.operators == {"orange": FeeRule(fixed_minor=100)}
    assert fees.rule_for(MERCHANT, "orange") == FeeRule()


def test_invalid_schedule_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXPAY_LEDGER_FEES", '{"default": {"percent_bp": -5}}')
    with pytest.raises(ValueError, match="non-negative"):
        Settings()
