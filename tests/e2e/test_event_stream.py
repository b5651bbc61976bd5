"""`GET /api/v1/events/stream` itself (what `fluxpay listen` reads): test keys only, a
bounded number of streams per merchant, one SSE event per webhook event."""

from __future__ import annotations

import contextlib
import json

import httpx
import pytest
from fluxpay_testing.infra import wait_for

from fluxpay_common import signing
from tests.e2e.sdk_support import async_client, bj

pytestmark = pytest.mark.e2e
MAX_STREAMS = 5


def stream_url(stack) -> str:
    return f"{stack.base_url}/api/v1/events/stream"


async def test_the_stream_refuses_a_live_key(stack, merchant_factory) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/none")
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(
            stream_url(stack), headers={"Authorization": f"Bearer {merchant.live_key}"}
        )
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "test_key_required"


async def test_a_merchant_has_a_bounded_number_of_streams(stack, merchant_factory) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/none")
    headers = {"Authorization": f"Bearer {merchant.test_key}"}
    async with httpx.AsyncClient(timeout=30) as http, contextlib.AsyncExitStack() as streams:

        async def open_one() -> httpx.Response:
            return await streams.enter_async_context(
                http.stream("GET", stream_url(stack), headers=headers)
            )

        first = await open_one()
        assert first.status_code == 200 and first.headers["content-type"].startswith(
            "text/event-stream"
        )
        for _ in range(MAX_STREAMS - 1):
            assert (await open_one()).status_code == 200
        refused = await http.get(stream_url(stack), headers=headers)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "too_many_streams"
        assert refused.headers["Retry-After"]
        other = merchant_factory("http://127.0.0.1:9/none")
        async with http.stream(
            "GET", stream_url(stack), headers={"Authorization": f"Bearer {other.test_key}"}
        ) as theirs:
            assert theirs.status_code == 200  # the limit is per merchant

        await first.aclose()

        async def reopened() -> bool:
            async with http.stream("GET", stream_url(stack), headers=headers) as again:
                return again.status_code == 200

        await wait_for(reopened, timeout=30, what="a stream once one was closed")


async def test_each_sse_event_is_a_signed_webhook_body(stack, merchant_factory) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/none")
    headers = {"Authorization": f"Bearer {merchant.test_key}"}
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(30, read=60)) as http,
        http.stream("GET", stream_url(stack), headers=headers) as stream,
    ):
        assert stream.status_code == 200
        payment = await async_client(stack, merchant.test_key).payments.create(**bj("000002"))
        frames: list[dict[str, str]] = []
        lines = stream.aiter_lines()

        async def failed_event() -> dict[str, str] | None:
            line = await anext(lines)
            if line.startswith("data: "):
                frames.append(json.loads(line.removeprefix("data: ")))
            return next((f for f in frames if f["type"] == "collect.payment.failed"), None)

        item = await wait_for(failed_event, timeout=60, interval=0, what="the failed event")
    body = item["body"].encode()
    assert signing.verify(merchant.webhook_secret, item["signature"], body)
    event = json.loads(body)
    assert event["id"] == item["id"] and event["data"]["object"]["id"] == payment.id
    assert len({f["id"] for f in frames}) == len(frames)  # each event once
