import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhook_dispatcher.config import Settings
from webhook_dispatcher.domain.schedule import (
    DEFAULT_SCHEDULE,
    delay_before_attempt,
    jittered,
    next_attempt_at,
    parse_schedule,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_default_schedule_retries_for_about_three_days() -> None:
    schedule = parse_schedule(DEFAULT_SCHEDULE)
    assert schedule[:8] == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert 70 * 3600 <= sum(schedule) <= 76 * 3600  # the design promises about three days


def test_compressed_schedule_parses_with_spaces_and_fractions() -> None:
    assert parse_schedule(" 0, 1,1.5 ,2") == (0, 1, 1.5, 2)


@pytest.mark.parametrize("text", ["", "0,,5", "0,five", "0,-1", "0,inf", "nan"])
def test_malformed_schedule_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_schedule(text)


def test_settings_refuse_a_malformed_schedule_at_start_up() -> None:
    with pytest.raises(ValueError):
        Settings(webhook_retry_schedule="0,soon")


def test_entry_i_is_the_delay_before_attempt_i_plus_one() -> None:
    schedule = parse_schedule("0,5,300")
    assert [delay_before_attempt(schedule, n) for n in (1, 2, 3, 4)] == [0, 5, 300, None]


def test_first_attempt_is_immediate_even_with_jitter() -> None:
    assert next_attempt_at(parse_schedule("0,5"), 0, NOW) == NOW


def test_no_attempt_follows_the_last_entry() -> None:
    assert next_attempt_at(parse_schedule("0,1,1,2"), 4, NOW) is None


@given(delay=st.floats(0, 10 * 86400), seed=st.integers())
def test_jitter_stays_within_ten_percent(delay: float, seed: int) -> None:
    moved = jittered(delay, random.Random(seed))
    assert delay * 0.9 - 1e-9 <= moved <= delay * 1.1 + 1e-9


def test_jitter_spreads_retries_rather_than_shifting_them() -> None:
    rng = random.Random(7)
    samples = [jittered(300, rng) for _ in range(500)]
    assert min(samples) < 285 and max(samples) > 315


def test_second_retry_of_the_default_schedule_is_about_five_minutes_later() -> None:
    at = next_attempt_at(parse_schedule(DEFAULT_SCHEDULE), 2, NOW, random.Random(1))
    assert at is not None
    assert timedelta(seconds=270) <= at - NOW <= timedelta(seconds=330)


def test_settings_refuse_a_claim_lease_shorter_than_an_attempt() -> None:
    with pytest.raises(ValueError):
        Settings(webhook_timeout_seconds=15, webhook_claim_lease_seconds=20)
    assert Settings(webhook_timeout_seconds=1).retry_schedule[0] == 0
