"""The SSRF guard end to end, as deployed: a stack without the development switch.

Its own database, vhost and processes (gateway and dispatcher only: webhook endpoints and
test events need nothing else), so the session's stack, which delivers to a local receiver
through the development switch, never touches these merchants.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fluxpay_testing.infra import isolated_infra, wait_for

from tests.support.receiver import WebhookReceiver
from tests.support.stack import ROOT, ServiceSpec, Stack

pytestmark = pytest.mark.e2e
PUBLIC_URL = "https://shop.example.com/webhooks"
SWITCH = "FLUXPAY_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS"


@pytest.fixture(scope="module")
def guarded_stack() -> Iterator[Stack]:
    with isolated_infra() as infra:
        stack = Stack(
            infra,
            log_dir=ROOT / "artifacts" / f"e2e-guard-{uuid.uuid4().hex[:6]}",
            extra_env={SWITCH: "false"},
            services=[
                ServiceSpec("gateway", ["fluxpay-gateway"]),
                ServiceSpec("webhooks", ["fluxpay-webhooks"]),
            ],
        )
        stack.start()
        try:
            stack.wait_ready()
            yield stack
        finally:
            stack.stop()


class Keys:
    def __init__(self, stack: Stack, created: dict[str, Any]) -> None:
        self.created = created
        self.clients = {
            env: httpx.AsyncClient(
                base_url=f"{stack.base_url}/api/v1",
                headers={"Authorization": f"Bearer {key}"},
                timeout=15,
            )
            for env, key in created["api_keys"].items()
        }

    @property
    def test(self) -> httpx.AsyncClient:
        return self.clients["test"]

    @property
    def live(self) -> httpx.AsyncClient:
        return self.clients["live"]


@pytest.fixture
async def merchant(guarded_stack: Stack) -> AsyncIterator[Keys]:
    keys = Keys(
        guarded_stack,
        guarded_stack.admin("create-merchant", "--name", "Guarded", "--webhook-url", PUBLIC_URL),
    )
    yield keys
    for client in keys.clients.values():
        await client.aclose()


def _refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["param"] == "url", error
    assert error["type"] == "invalid_request_error" and error["message"].startswith("'url'")


async def _endpoint_url(client: httpx.AsyncClient) -> object:
    return (await client.get("/webhook_endpoint")).json().get("url")


async def test_a_test_key_cannot_save_an_internal_url(merchant: Keys) -> None:
    await wait_for(
        lambda: _is(merchant.test, PUBLIC_URL), timeout=30, what="the endpoint replicated"
    )
    for url in (
        "http://127.0.0.1:8401/callbacks/novasend",
        "http://localhost:8401/",
        "http://[::1]:8401/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/hooks",
    ):
        _refused(
            await merchant.test.put("/webhook_endpoint", json={"url": url}),
            "webhook_url_destination_forbidden",
        )
    _refused(
        await merchant.test.put("/webhook_endpoint", json={"url": "http://u:p@shop.example.com/"}),
        "webhook_url_credentials_forbidden",
    )
    assert await _endpoint_url(merchant.test) == PUBLIC_URL


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://shop.example.com/webhooks", "webhook_url_https_required"),
        ("https://169.254.169.254/latest/meta-data/", "webhook_url_destination_forbidden"),
        ("https://10.1.2.3/webhooks", "webhook_url_destination_forbidden"),
        ("https://[::1]/webhooks", "webhook_url_destination_forbidden"),
        ("https://user:pass@shop.example.com/webhooks", "webhook_url_credentials_forbidden"),
        ("ftp://shop.example.com/webhooks", "webhook_url_invalid"),
    ],
)
async def test_unsafe_live_urls_are_refused_when_saved(merchant: Keys, url: str, code) -> None:
    _refused(await merchant.live.put("/webhook_endpoint", json={"url": url}), code)
    accepted = await merchant.live.put("/webhook_endpoint", json={"url": PUBLIC_URL + "/v2"})
    assert accepted.status_code == 200, accepted.text


def test_create_merchant_refuses_an_internal_url(guarded_stack: Stack) -> None:
    with pytest.raises(RuntimeError, match="webhook_url_destination_forbidden"):
        guarded_stack.admin(
            "create-merchant", "--name", "Internal", "--webhook-url", "http://127.0.0.1:1/h"
        )


async def test_a_test_event_to_an_internal_address_is_never_delivered_nor_its_answer_shown(
    guarded_stack: Stack,
) -> None:
    internal = WebhookReceiver(respond=lambda _: 401).start()
    # As an endpoint saved before the guard (or whose DNS name now points inside) would be:
    # the operator CLI, run here with the development switch, stores the internal URL.
    created = guarded_stack.admin(
        "create-merchant", "--name", "Probe", "--webhook-url", internal.url, env={SWITCH: "true"}
    )
    keys = Keys(guarded_stack, created)
    try:
        await wait_for(lambda: _is(keys.test, internal.url), timeout=30, what="the endpoint")
        sent = await keys.test.post(f"{keys.test.base_url.copy_with(path='/api/webhooks/test')}")
        assert sent.status_code == 202, sent.text
        event_id = sent.json()["id"]

        async def attempted() -> list[dict[str, Any]]:
            event = (await keys.test.get(f"/events/{event_id}")).json()
            return [a for d in event["deliveries"] for a in d["attempts"]]

        attempts = await wait_for(attempted, timeout=30, what="the first attempt")
        for attempt in attempts:
            assert attempt["status_code"] is None and attempt["response_excerpt"] is None
            assert "destination refused" in attempt["error"], attempt
        assert internal.snapshot() == []
    finally:
        internal.stop()
        for client in keys.clients.values():
            await client.aclose()


async def _is(client: httpx.AsyncClient, url: str) -> bool:
    return await _endpoint_url(client) == url
