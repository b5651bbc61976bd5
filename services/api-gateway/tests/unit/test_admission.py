"""The create bound: refuses past the limit, shrinks while answers are slow, recovers."""

from __future__ import annotations

import pytest

from api_gateway.admission import AdmissionLimit, admitted
from api_gateway.errors import ApiError


def fill(limit: AdmissionLimit) -> int:
    entered = 0
    while limit.try_enter():
        entered += 1
    return entered


def test_refuses_past_the_ceiling_and_admits_again_when_one_leaves() -> None:
    limit = AdmissionLimit(ceiling=3, floor=1, target_seconds=0.1)
    assert fill(limit) == 3
    assert not limit.try_enter()
    limit.leave(0.01)
    assert limit.try_enter()


def test_slow_answers_shrink_the_bound_to_the_floor_and_answers_in_time_restore_it() -> None:
    limit = AdmissionLimit(ceiling=64, floor=8, target_seconds=0.1)
    for _ in range(100):
        assert limit.try_enter()
        limit.leave(2.0)
    assert fill(limit) == 8
    for _ in range(8):
        limit.leave(0.01)
    assert int(limit.limit) == 16
    for _ in range(100):
        limit.try_enter()
        limit.leave(0.01)
    assert int(limit.limit) == 64


def test_the_floor_never_exceeds_the_ceiling() -> None:
    limit = AdmissionLimit(ceiling=1, floor=8)
    assert fill(limit) == 1


def test_a_refusal_is_a_503_with_retry_after_and_holds_no_place() -> None:
    limit = AdmissionLimit(ceiling=1, floor=1)
    with admitted(limit, 2):
        with pytest.raises(ApiError) as refused, admitted(limit, 2):
            pass
        assert limit.in_flight == 1
    assert limit.in_flight == 0
    error = refused.value
    assert (error.status, error.code, error.kind) == (503, "service_overloaded", "api_error")
    assert error.headers == {"Retry-After": "2"}


def test_a_failed_create_gives_its_place_back() -> None:
    limit = AdmissionLimit(ceiling=1, floor=1)
    with pytest.raises(RuntimeError), admitted(limit, 1):
        raise RuntimeError("orchestrator said no")
    assert limit.in_flight == 0
