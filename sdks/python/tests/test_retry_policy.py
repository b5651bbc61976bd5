"""Which answers are retried, and how long the client waits (pure rules; the stack tests
show the retries against the running gateway)."""

from __future__ import annotations

import email.utils
import random
import time

import httpx
import pytest

from fluxpay._base import Call, RetryPolicy, retry_after_seconds

CREATE = Call("POST", "/collect/payments", json={}, idempotency_key="k")
CONFIRM = Call("POST", "/collect/payments/p/confirm", json={"otp": "1"}, replay_safe=False)
READ = Call("GET", "/collect/payments/p")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 422])
def test_other_4xx_are_never_retried(status: int) -> None:
    assert not RetryPolicy().retries_answer(status, CREATE)
    assert not RetryPolicy().retries_answer(status, READ)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_429_and_5xx_are_retried_for_reads_and_keyed_creates(status: int) -> None:
    assert RetryPolicy().retries_answer(status, CREATE)
    assert RetryPolicy().retries_answer(status, READ)


def test_a_call_that_is_not_replay_safe_is_retried_only_when_nothing_happened() -> None:
    policy = RetryPolicy()
    assert policy.retries_answer(429, CONFIRM)
    assert not policy.retries_answer(503, CONFIRM)
    assert policy.retries_transport_error(httpx.ConnectError("refused"), CONFIRM)
    assert not policy.retries_transport_error(httpx.ReadTimeout("slow"), CONFIRM)
    assert policy.retries_transport_error(httpx.ReadTimeout("slow"), CREATE)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=4.0, rng=random.Random(7))
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = {policy.delay(retry) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered, so clients do not retry in step


def test_retry_after_seconds_is_honoured_and_capped() -> None:
    policy = RetryPolicy(max_retry_after=10)
    assert policy.delay(1, {"Retry-After": "3"}) == 3
    assert policy.delay(1, {"retry-after": "3600"}) == 10


def test_retry_after_as_an_http_date() -> None:
    in_five = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3 <= (retry_after_seconds({"Retry-After": in_five}) or 0) <= 5
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None
