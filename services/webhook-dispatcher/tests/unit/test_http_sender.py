"""Pure parts of the sender: the pinned request's shape and the response excerpt."""

import ipaddress

import httpx

from webhook_dispatcher.adapters.http_sender import _PinnedRequest, _read_excerpt
from webhook_dispatcher.adapters.pinned_pools import PinnedPools


def test_pinned_request_connects_to_the_ip_but_speaks_to_the_hostname() -> None:
    url = httpx.URL("https://user:pw@shop.example.com:8443/hooks?x=1")
    pinned = _PinnedRequest(url, ipaddress.ip_address("203.0.113.7"))
    assert pinned.url.host == "203.0.113.7" and pinned.url.port == 8443
    assert pinned.url.path == "/hooks" and pinned.url.query == b"x=1"
    assert pinned.headers == {"Host": "shop.example.com:8443"}
    assert pinned.extensions == {"sni_hostname": "shop.example.com"}


def test_pinned_ipv6_address_is_bracketed_in_the_url() -> None:
    pinned = _PinnedRequest(
        httpx.URL("https://shop.example.com/h"), ipaddress.ip_address("2001:db8::7")
    )
    assert str(pinned.url) == "https://[2001:db8::7]/h"
    assert pinned.headers == {"Host": "shop.example.com"}


def test_unpinned_request_is_sent_as_given() -> None:
    url = httpx.URL("http://127.0.0.1:9000/webhooks")
    unpinned = _PinnedRequest(url, None)
    assert unpinned.url == url and unpinned.headers == {} and unpinned.extensions == {}


async def test_only_the_first_256_bytes_of_a_response_are_kept() -> None:
    assert await _read_excerpt(httpx.ByteStream(b"x" * 5000)) == "x" * 256


async def test_an_excerpt_is_short_and_carries_no_control_characters() -> None:
    excerpt = await _read_excerpt(httpx.ByteStream(b"ok\x00\x1b[31m" + b"y" * 600))
    assert len(excerpt.encode()) <= 256 + 6 and "\x00" not in excerpt and "\x1b" not in excerpt
    assert excerpt.startswith("ok\ufffd\ufffd[31m")


async def test_idle_pinned_pools_are_closed_beyond_the_bound() -> None:
    closed: list[int] = []

    class _Client:
        def __init__(self, n: int) -> None:
            self.n = n

        async def aclose(self) -> None:
            closed.append(self.n)

    made = iter(range(10))
    pools = PinnedPools(lambda: _Client(next(made)), max_pools=2, idle_seconds=60)  # type: ignore[arg-type,return-value]
    for host in ("a", "b", "a", "c"):
        async with pools.client(("https", host, 443, "203.0.113.7")):
            pass
    assert len(pools) == 2 and closed == [1], "b, the least recently used, was closed"
