"""The HTTP sender against a local receiver: pinning, redirects, refusals (no broker)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

import httpcore
import pytest

from fluxpay_common import ssrf
from webhook_dispatcher.adapters import http_sender
from webhook_dispatcher.adapters.asyncio_network import AsyncioBackend
from webhook_dispatcher.adapters.http_sender import WebhookSender

LOOPBACK = ipaddress.ip_address("127.0.0.1")
BODY = b'{"id":"evt_sender_test"}'


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    async with WebhookSender(timeout_seconds=2, max_connections=4) as sender:
        yield sender


@pytest.fixture
async def local_sender() -> AsyncIterator[WebhookSender]:
    """With the development switch: loopback allowed, nothing pinned, nothing excerpted."""
    async with WebhookSender(timeout_seconds=2, max_connections=4, allow_private=True) as sender:
        yield sender


@pytest.fixture
def loopback_as_public(monkeypatch) -> None:
    """The receiver listens on loopback: let loopback stand in for a public address here."""
    monkeypatch.setattr(http_sender, "check_addresses", lambda addresses: addresses[0])
    monkeypatch.setattr(
        http_sender,
        "check_url",
        lambda url, _, **__: ssrf.check_url(url, "test", allow_private=True),
    )


async def test_live_request_goes_to_the_checked_address_with_the_merchant_host(
    webhook_receiver, loopback_as_public
) -> None:
    port = webhook_receiver.url.split(":")[2].split("/")[0]
    asked: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[ssrf.IPAddress]:
        asked.append((host, port))
        return [LOOPBACK]

    async with WebhookSender(timeout_seconds=2, max_connections=4, resolver=resolver) as sender:
        # `shop.invalid` exists in no DNS: only the pinned address can have been dialled.
        outcome = await sender.send(
            f"http://shop.invalid:{port}/webhooks", "live", BODY, {"X-FluxPay-Event-Id": "e1"}
        )
    assert outcome.succeeded, outcome
    assert outcome.response_excerpt == "ok", "a guarded destination's answer is excerpted"
    assert asked == [("shop.invalid", int(port))]
    [received] = webhook_receiver.snapshot()
    assert received.headers["Host"] == f"shop.invalid:{port}"
    assert received.body == BODY and received.headers["X-FluxPay-Event-Id"] == "e1"


async def test_live_refuses_a_host_resolving_to_loopback_without_calling_it(
    sender, webhook_receiver
) -> None:
    port = webhook_receiver.url.split(":")[2].split("/")[0]
    outcome = await sender.send(f"https://localhost:{port}/webhooks", "live", BODY, {})
    assert not outcome.succeeded and outcome.status_code is None
    assert outcome.error is not None and "loopback" in outcome.error
    assert webhook_receiver.snapshot() == []


async def test_live_refuses_plain_http(sender, webhook_receiver) -> None:
    outcome = await sender.send(webhook_receiver.url, "live", BODY, {})
    assert outcome.error is not None and "must use https" in outcome.error
    assert webhook_receiver.snapshot() == []


async def test_live_refuses_a_host_with_one_private_address_among_public_ones(
    webhook_receiver,
) -> None:
    async def resolver(host: str, port: int) -> list[ssrf.IPAddress]:
        return [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.7")]

    async with WebhookSender(timeout_seconds=2, max_connections=4, resolver=resolver) as sender:
        outcome = await sender.send("https://shop.invalid/webhooks", "live", BODY, {})
    assert outcome.error is not None and "10.0.0.7" in outcome.error


async def test_test_environment_refuses_a_local_receiver_without_calling_it(
    sender, webhook_receiver
) -> None:
    for url in (webhook_receiver.url, webhook_receiver.url.replace("127.0.0.1", "localhost")):
        outcome = await sender.send(url, "test", BODY, {})
        assert outcome.status_code is None and outcome.response_excerpt is None
        assert outcome.error is not None and "loopback" in outcome.error
    assert webhook_receiver.snapshot() == []


async def test_test_environment_resolves_and_pins_like_live(webhook_receiver) -> None:
    async def resolver(host: str, port: int) -> list[ssrf.IPAddress]:
        return [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("169.254.169.254")]

    async with WebhookSender(timeout_seconds=2, max_connections=4, resolver=resolver) as sender:
        outcome = await sender.send("http://shop.invalid/webhooks", "test", BODY, {})
    assert outcome.error is not None and "metadata" in outcome.error


async def test_the_development_switch_posts_to_local_http_without_excerpt(
    local_sender, webhook_receiver
) -> None:
    outcome = await local_sender.send(webhook_receiver.url, "live", BODY, {})
    assert outcome.succeeded and outcome.response_excerpt is None
    [received] = webhook_receiver.snapshot()
    assert received.headers["User-Agent"] == "FluxPay-Webhooks/2026-06"
    assert received.headers["Content-Type"] == "application/json"


async def test_redirect_is_a_failure_not_followed_nor_excerpted(
    webhook_receiver, loopback_as_public
) -> None:
    webhook_receiver.respond = lambda _: 302
    async with WebhookSender(timeout_seconds=2, max_connections=4) as sender:
        outcome = await sender.send(webhook_receiver.url, "test", BODY, {})
    assert outcome.status_code == 302 and not outcome.succeeded
    assert outcome.error == "redirect not followed (HTTP 302)"
    assert outcome.response_excerpt is None
    assert len(webhook_receiver.snapshot()) == 1


async def test_refused_connection_is_a_failed_attempt(local_sender) -> None:
    outcome = await local_sender.send("http://127.0.0.1:9/webhooks", "test", BODY, {})
    assert not outcome.succeeded and outcome.error is not None
    assert "ConnectError" in outcome.error


async def test_the_development_switch_keeps_the_connection_alive(
    local_sender, webhook_receiver
) -> None:
    for _ in range(3):
        outcome = await local_sender.send(webhook_receiver.url, "test", BODY, {})
        assert outcome.succeeded, outcome
    assert len({r.peer for r in webhook_receiver.snapshot()}) == 1, "one connection, reused"


async def test_a_pinned_connection_is_reused_for_its_hostname_only(
    webhook_receiver, loopback_as_public
) -> None:
    port = webhook_receiver.url.split(":")[2].split("/")[0]

    async def resolver(host: str, port: int) -> list[ssrf.IPAddress]:
        return [LOOPBACK]  # two merchants' names on one address

    async with WebhookSender(timeout_seconds=2, max_connections=4, resolver=resolver) as sender:
        for host in ("shop.invalid", "shop.invalid", "other.invalid", "shop.invalid"):
            outcome = await sender.send(f"http://{host}:{port}/webhooks", "test", BODY, {})
            assert outcome.succeeded and outcome.response_excerpt == "ok", outcome
    by_host: dict[str, set[tuple[str, int]]] = {}
    for received in webhook_receiver.snapshot():
        by_host.setdefault(received.headers["Host"].split(":")[0], set()).add(received.peer)
    assert len(by_host["shop.invalid"]) == 1, "the same hostname reuses its connection"
    assert len(by_host["other.invalid"]) == 1
    assert not by_host["shop.invalid"] & by_host["other.invalid"], "never across hostnames"


async def test_an_answer_too_long_to_read_closes_its_connection_but_counts(
    webhook_receiver, loopback_as_public, monkeypatch
) -> None:
    monkeypatch.setattr(http_sender, "DRAIN_BYTES", 1)  # the receiver's "ok" is longer
    async with WebhookSender(timeout_seconds=2, max_connections=4) as sender:
        for _ in range(2):
            outcome = await sender.send(webhook_receiver.url, "test", BODY, {})
            assert outcome.succeeded and outcome.response_excerpt == "ok", outcome
    assert len({r.peer for r in webhook_receiver.snapshot()}) == 2, "not reused"


async def test_an_idle_connection_the_server_closed_is_seen_as_such_and_not_reused() -> None:
    async def close_at_once(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=2)
        assert await stream.read(10, timeout=2) == b"", "the server's close reads as EOF"
        assert stream.get_extra_info("is_readable") is True
        await stream.aclose()
        with pytest.raises(httpcore.ConnectError):
            await AsyncioBackend().connect_tcp("127.0.0.1", 9, timeout=2)
    finally:
        server.close()
        await server.wait_closed()


async def test_a_silent_server_times_a_read_out_as_httpcore_says() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=2)
        assert stream.get_extra_info("is_readable") is False
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(10, timeout=0.05)
        await stream.aclose()
    finally:
        server.close()
        await server.wait_closed()
