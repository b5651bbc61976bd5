"""The SDK's retries through a proxy that fails chosen requests in front of the running
gateway: one Idempotency-Key per create on every try, exactly one payment, 429 honoured,
other 4xx never retried."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest

import fluxpay
from tests.e2e.sdk_support import async_client, bj, sync_client
from tests.support.flaky_proxy import Fault, FlakyProxy

pytestmark = pytest.mark.e2e
CREATE = "/api/v1/collect/payments"


@pytest.fixture
def proxy(stack) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(stack.base_url).start()
    yield proxy
    proxy.stop()


async def payments_with_reference(db: asyncpg.Connection, reference: str) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM orchestrator.payment WHERE reference = $1", reference
    )
    return count


def keys_sent(proxy: FlakyProxy) -> list[str | None]:
    return [s.headers.get("Idempotency-Key") for s in proxy.requests_to("POST", CREATE)]


async def test_a_503_then_201_is_one_payment_under_one_key(proxy, merchant_factory, db) -> None:
    client = sync_client(proxy.url, merchant_factory("http://127.0.0.1:9/none").test_key)
    proxy.fail_next(Fault(503, headers=(("Retry-After", "0"),)))
    body = bj("000001")
    payment = client.payments.create(**body)
    assert payment.reference == body["reference"] and not payment.idempotent_replay
    assert [s.answered for s in proxy.requests_to("POST", CREATE)] == [503, 201]
    first, second = keys_sent(proxy)
    assert first and first == second
    assert await payments_with_reference(db, body["reference"]) == 1


async def test_a_lost_answer_is_replayed_not_created_twice(proxy, merchant_factory, db) -> None:
    """The gateway created the payment but its answer was lost: the retry carries the same
    key, so the platform answers the stored payment instead of making a second one."""
    client = async_client(proxy.url, merchant_factory("http://127.0.0.1:9/none").test_key)
    proxy.fail_next(Fault(502, after_forwarding=True))
    body = bj("000001")
    payment = await client.payments.create(**body)
    assert payment.idempotent_replay
    assert [s.answered for s in proxy.requests_to("POST", CREATE)] == [502, 200]
    first, second = keys_sent(proxy)
    assert first and first == second
    assert await payments_with_reference(db, body["reference"]) == 1
    await client.aclose()


async def test_each_create_has_its_own_key(proxy, merchant_factory) -> None:
    client = sync_client(proxy.url, merchant_factory("http://127.0.0.1:9/none").test_key)
    client.payments.create(**bj("000001"))
    client.payments.create(**bj("000001"))
    first, second = keys_sent(proxy)
    assert first and second and first != second


async def test_429_waits_as_told_then_succeeds(proxy, merchant_factory) -> None:
    slept: list[float] = []
    client = sync_client(
        proxy.url, merchant_factory("http://127.0.0.1:9/none").test_key, sleep=slept.append
    )
    proxy.fail_next(Fault(429, headers=(("Retry-After", "2"),)))
    assert client.balance.retrieve().environment == "test"
    assert slept == [2.0]
    assert [s.answered for s in proxy.requests_to("GET", "/api/v1/balance")] == [429, 200]


async def test_429_past_the_retries_is_a_rate_limit_error(proxy, merchant_factory) -> None:
    client = sync_client(
        proxy.url, merchant_factory("http://127.0.0.1:9/none").test_key, max_retries=2
    )
    limited = (
        b'{"error": {"type": "rate_limit_error", "code": "rate_limited",'
        b' "message": "Too many requests", "doc_url": "https://docs.fluxxpay.me/errors#rate_limited"}}'
    )
    proxy.fail_next(*[Fault(429, headers=(("Retry-After", "1"),), body=limited)] * 3)
    with pytest.raises(fluxpay.RateLimitError) as error:
        client.payments.create(**bj("000001"))
    assert (error.value.http_status, error.value.code) == (429, "rate_limited")
    assert error.value.type == "rate_limit_error" and error.value.doc_url
    assert len(proxy.requests_to("POST", CREATE)) == 3  # the first try and two retries
    assert len(set(keys_sent(proxy))) == 1


async def test_other_4xx_are_never_retried(proxy, merchant_factory) -> None:
    client = sync_client(proxy.url, merchant_factory("http://127.0.0.1:9/none").test_key)
    with pytest.raises(fluxpay.InvalidRequestError):
        client.payments.create(**{**bj("000001"), "amount": 50})
    with pytest.raises(fluxpay.NotFoundError):
        client.payments.retrieve("no-such-payment")
    assert len(proxy.requests_to("POST", CREATE)) == 1
    assert len(proxy.requests_to("GET", CREATE)) == 1


async def test_an_unreachable_api_is_a_connection_error_after_the_retries(merchant_factory):
    from fluxpay_testing.infra import free_port

    client = sync_client(f"http://127.0.0.1:{free_port()}", "00000000-0000-4000-8000-000000000000")
    with pytest.raises(fluxpay.APIConnectionError):
        client.balance.retrieve()
