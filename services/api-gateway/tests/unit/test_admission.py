"""The create bound: refuses past the limit, shrinks while answers are slow, recovers."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from api_gateway.admission import AdmissionLimit, CreateAdmission


def fill(limit: AdmissionLimit, now: float = 0.0) -> int:
    entered = 0
    while limit.try_enter(now):
        entered += 1
    return entered


def test_refuses_past_the_ceiling_and_admits_again_when_one_leaves() -> None:
    limit = AdmissionLimit(ceiling=3, floor=1, target_seconds=0.1)
    assert fill(limit) == 3
    assert not limit.try_enter(0.0)
    limit.leave(0.01, 0.0)
    assert limit.try_enter(0.0)


def test_slow_answers_shrink_the_bound_to_the_floor_and_answers_in_time_restore_it() -> None:
    limit = AdmissionLimit(ceiling=64, floor=8, target_seconds=0.1)
    for _ in range(100):
        assert limit.try_enter(0.0)
        limit.leave(2.0, 0.0)
    assert fill(limit) == 8
    for _ in range(8):
        limit.leave(0.01, 0.0)
    assert int(limit.limit) == 16
    for _ in range(100):
        limit.try_enter(0.0)
        limit.leave(0.01, 0.0)
    assert int(limit.limit) == 64


def test_a_quiet_second_restores_the_bound_a_burst_shrank() -> None:
    limit = AdmissionLimit(ceiling=64, floor=4, target_seconds=0.1, recovery_seconds=1.0)
    for _ in range(100):  # a burst answered slowly: the bound falls to the floor
        assert limit.try_enter(10.0)
        limit.leave(2.0, 10.0)
    assert fill(limit, 10.5) == 4  # half a second later it still holds
    for _ in range(4):
        limit.leave(2.0, 10.5)  # the last one leaves at 10.5: nothing in flight since
    assert fill(limit, 11.4) == 4
    for _ in range(4):
        limit.leave(2.0, 11.4)
    assert fill(limit, 12.4) == 64  # a second with nothing in flight: back at the ceiling


def test_the_floor_never_exceeds_the_ceiling() -> None:
    limit = AdmissionLimit(ceiling=1, floor=8)
    assert fill(limit) == 1


async def _call(middleware: CreateAdmission, method: str, path: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    await middleware(scope, receive, send)
    return sent


def _middleware(limit: AdmissionLimit, app: Any) -> CreateAdmission:
    return CreateAdmission(app, limit, retry_after_seconds=2, doc_base_url="https://d/errors")


async def test_a_create_past_the_bound_is_refused_with_503_retry_after_and_the_error_shape():
    limit = AdmissionLimit(ceiling=1, floor=1)
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    middleware = _middleware(limit, app)
    assert limit.try_enter(0.0)  # another create holds the only place
    sent = await _call(middleware, "POST", "/api/v1/collect/payments")
    assert reached == []
    start, body = sent
    assert start["status"] == 503
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert headers["retry-after"] == "2"
    assert headers["content-type"] == "application/json"
    error = orjson.loads(body["body"])["error"]
    assert (error["type"], error["code"]) == ("api_error", "service_overloaded")
    assert error["doc_url"] == "https://d/errors#service_overloaded"
    # Other requests are not bounded; the place is given back after a create.
    await _call(middleware, "GET", "/api/v1/collect/payments/abc")
    limit.leave(0.01, 0.0)
    await _call(middleware, "POST", "/api/v1/collect/payments")
    assert reached == ["/api/v1/collect/payments/abc", "/api/v1/collect/payments"]
    assert limit.in_flight == 0


async def test_a_failed_create_gives_its_place_back() -> None:
    limit = AdmissionLimit(ceiling=1, floor=1)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("orchestrator said no")

    with pytest.raises(RuntimeError):
        await _call(_middleware(limit, app), "POST", "/api/v1/collect/payments")
    assert limit.in_flight == 0


async def test_the_place_is_free_once_the_answer_is_sent() -> None:
    """A merchant who gets the answer and sends the next create at once finds the place."""
    limit = AdmissionLimit(ceiling=1, floor=1)
    seen_after_answer: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})
        seen_after_answer.append(limit.in_flight)

    await _call(_middleware(limit, app), "POST", "/api/v1/collect/payments")
    assert seen_after_answer == [0]
    assert limit.in_flight == 0
