"""POST one signed event to a merchant, within a time budget, behind the SSRF guard.

In every environment (test events, replays and `POST /webhooks/test` included) the URL is
checked (`fluxpay_common.ssrf`), the host resolved here, every address checked, and the
request sent to the checked address (URL host rewritten to the IP, `Host` header and TLS
SNI/certificate check on the merchant's hostname), so DNS cannot answer differently between
check and connect. Pinned requests never reuse a pooled connection: two hostnames sharing an
IP would otherwise share a TLS session verified for only one of them. Redirects are not
followed.

What the merchant reads back must not make us a reading proxy: the status code always, and
at most the first 256 bytes of the body only from a destination that passed the guard and
did not redirect. Only the development-only `allow_private` setting skips the address
checks (a receiver on 127.0.0.1); its answers are never excerpted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from types import TracebackType

import httpx

from fluxpay_common.messages import API_VERSION, Environment
from fluxpay_common.ssrf import IPAddress, UnsafeDestination, check_addresses, check_url
from webhook_dispatcher.domain.delivery import AttemptOutcome

USER_AGENT = f"FluxPay-Webhooks/{API_VERSION}"
EXCERPT_BYTES = 256

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class _PinnedRequest:
    """The URL, headers and extensions that send a request to one checked address."""

    def __init__(self, url: httpx.URL, address: IPAddress | None) -> None:
        self.pinned = address is not None
        self.url = url if address is None else url.copy_with(host=str(address))
        self.headers = {} if address is None else {"Host": url.netloc.decode("ascii")}
        pinned_tls = address is not None and url.scheme == "https"
        self.extensions = {"sni_hostname": url.raw_host.decode("ascii")} if pinned_tls else {}


class WebhookSender:
    def __init__(
        self,
        timeout_seconds: float,
        max_connections: int,
        resolver: Resolver = resolve_host,
        allow_private: bool = False,
    ) -> None:
        # Development only (refused at start-up elsewhere): no address checks, no pinning.
        self._allow_private = allow_private
        self._timeout = timeout_seconds
        self._max_connections = max_connections
        self._resolve = resolver
        self._direct: httpx.AsyncClient | None = None
        self._pinned: httpx.AsyncClient | None = None

    async def __aenter__(self) -> WebhookSender:
        self._direct = self._client(keepalive=self._max_connections)
        self._pinned = self._client(keepalive=0)
        return self

    async def __aexit__(
        self, _: type[BaseException] | None, __: BaseException | None, ___: TracebackType | None
    ) -> None:
        for client in (self._direct, self._pinned):
            if client is not None:
                await client.aclose()

    def _client(self, keepalive: int) -> httpx.AsyncClient:
        # trust_env=False: an HTTP(S)_PROXY variable must not route around the SSRF guard.
        # TCP_NODELAY: headers and body go out as two writes; Nagle would hold the second.
        transport = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=self._max_connections, max_keepalive_connections=keepalive
            ),
            trust_env=False,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        return httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(self._timeout),
        )

    async def send(
        self, url: str, environment: Environment, body: bytes, headers: dict[str, str]
    ) -> AttemptOutcome:
        started = time.monotonic()
        status, excerpt, error = None, None, None
        try:
            async with asyncio.timeout(self._timeout):
                status, excerpt = await self._post(url, environment, body, headers)
        except UnsafeDestination as exc:
            error = f"destination refused: {exc}"
        except (TimeoutError, httpx.TimeoutException):
            error = f"timed out after {self._timeout:g} s"
        except socket.gaierror as exc:
            error = f"host did not resolve: {exc.strerror}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        if status is not None and 300 <= status < 400:
            error = f"redirect not followed (HTTP {status})"
            excerpt = None
        duration_ms = int((time.monotonic() - started) * 1000)
        return AttemptOutcome(status, error, duration_ms, excerpt)

    async def _post(
        self, url: str, environment: Environment, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str | None]:
        request = await self._pin(url, environment)
        client = self._pinned if request.pinned else self._direct
        assert client is not None, "WebhookSender used outside `async with`"
        async with client.stream(
            "POST",
            request.url,
            content=body,
            headers={**_base_headers(), **headers, **request.headers},
            extensions=request.extensions,
        ) as response:
            # Only a destination that passed the guard is excerpted (see the module's doc).
            excerpt = await _read_excerpt(response) if request.pinned else None
            return response.status_code, excerpt

    async def _pin(self, url: str, environment: Environment) -> _PinnedRequest:
        destination = check_url(url, environment, allow_private=self._allow_private)
        parsed = httpx.URL(url)
        if self._allow_private:
            return _PinnedRequest(parsed, None)
        if parsed.host != destination.host:
            # Two URL parsers disagreeing on the host is how SSRF filters get bypassed.
            raise UnsafeDestination("ambiguous host in URL")
        address = check_addresses(await self._resolve(destination.host, destination.port))
        return _PinnedRequest(parsed, address)


def _base_headers() -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        # Raw bytes only: a compressed answer could expand far beyond the excerpt.
        "Accept-Encoding": "identity",
    }


async def _read_excerpt(response: httpx.Response) -> str:
    collected = b""
    async for chunk in response.aiter_raw():
        collected += chunk
        if len(collected) >= EXCERPT_BYTES:
            break
    text = collected[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    # Shown in an API answer and a dashboard: no control characters (NUL breaks storage).
    return "".join(c if c.isprintable() or c in "\n\t" else "\ufffd" for c in text)
