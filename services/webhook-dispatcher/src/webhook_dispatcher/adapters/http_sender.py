"""POST one signed event to a merchant, within a time budget, behind the SSRF guard.

In every environment (test events, replays and `POST /webhooks/test` included) the URL is
checked (`fluxpay_common.ssrf`), the host resolved here, every address checked, and the
request sent to the checked address (URL host rewritten to the IP, `Host` header and TLS
SNI/certificate check on the merchant's hostname), so DNS cannot answer differently between
check and connect. Connections are kept alive and reused, pinned ones only within their own
pool per (scheme, hostname, port, checked address): two hostnames sharing an IP never share a
connection (its TLS session was verified for one of them only), and a name resolving
elsewhere next time gets a fresh connection to the newly checked address. Idle connections
are bounded per pool and expire; idle pools are closed. Redirects are not followed.

What the merchant reads back must not make us a reading proxy: the status code always, and
at most the first 256 bytes of the body only from a destination that passed the guard and
did not redirect. Only the development-only `allow_private` setting skips the address
checks (a receiver on 127.0.0.1); its answers are never excerpted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType

import httpcore
import httpx

from fluxpay_common.messages import API_VERSION, Environment
from fluxpay_common.ssrf import IPAddress, UnsafeDestination, check_addresses, check_url
from webhook_dispatcher.adapters.asyncio_network import AsyncioBackend
from webhook_dispatcher.adapters.pinned_pools import PinnedPools, PoolKey
from webhook_dispatcher.domain.delivery import AttemptOutcome

USER_AGENT = f"FluxPay-Webhooks/{API_VERSION}"
EXCERPT_BYTES = 256
# An answer is read to its end so its connection can carry the next request; a longer one is
# not worth reading: its connection is closed instead.
DRAIN_BYTES = 64 * 1024
# Below the shortest keep-alive timeout common servers use (Node's 5 s): a reused connection
# is seldom one the server is closing at that very moment.
KEEPALIVE_SECONDS = 4.0
# Pinned pools (one per merchant host and address) kept at most, idle ones closed first.
MAX_PINNED_POOLS = 256

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
    """The URL, headers and extensions that send a request to one checked address, and the
    pool whose connections may carry it (None: unpinned, development only)."""

    def __init__(self, url: httpx.URL, address: IPAddress | None) -> None:
        self.pinned = address is not None
        self.pool_key: PoolKey | None = (
            None if address is None else (url.scheme, url.host, url.port or -1, str(address))
        )
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
        keepalive_per_host: int = 4,
        max_pinned_pools: int = MAX_PINNED_POOLS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        # Development only (refused at start-up elsewhere): no address checks, no pinning.
        self._allow_private = allow_private
        self._timeout = timeout_seconds
        self._max_connections = max_connections
        self._keepalive_per_host = keepalive_per_host
        self._resolve = resolver
        # One TLS context (CA bundle loaded once) for every pool; tests bring their own CA.
        self._ssl = ssl_context or httpx.create_ssl_context(trust_env=False)
        self._timeouts = dict.fromkeys(("connect", "read", "write", "pool"), timeout_seconds)
        self._direct: httpcore.AsyncConnectionPool | None = None
        self._pinned = PinnedPools(self._pinned_client, max_pinned_pools, KEEPALIVE_SECONDS)

    async def __aenter__(self) -> WebhookSender:
        self._direct = self._client(keepalive=self._max_connections)
        return self

    async def __aexit__(
        self, _: type[BaseException] | None, __: BaseException | None, ___: TracebackType | None
    ) -> None:
        if self._direct is not None:
            await self._direct.aclose()
        await self._pinned.aclose()

    def _pinned_client(self) -> httpcore.AsyncConnectionPool:
        return self._client(keepalive=self._keepalive_per_host)

    def _client(self, keepalive: int) -> httpcore.AsyncConnectionPool:
        # httpcore directly (httpx's request and response models were a third of a POST's
        # CPU): no proxy, whatever the environment says, so nothing routes around the guard.
        # TCP_NODELAY: a request goes out in one write; never held back for an ACK.
        return httpcore.AsyncConnectionPool(
            ssl_context=self._ssl,
            max_connections=self._max_connections,
            max_keepalive_connections=keepalive,
            keepalive_expiry=KEEPALIVE_SECONDS,
            http1=True,
            http2=False,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            network_backend=AsyncioBackend(),
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
        except (TimeoutError, httpcore.TimeoutException):
            error = f"timed out after {self._timeout:g} s"
        except socket.gaierror as exc:
            error = f"host did not resolve: {exc.strerror}"
        except HTTP_ERRORS as exc:
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
        if request.pool_key is None:
            assert self._direct is not None, "WebhookSender used outside `async with`"
            return await self._exchange(self._direct, request, body, headers)
        async with self._pinned.client(request.pool_key) as client:
            return await self._exchange(client, request, body, headers)

    async def _exchange(
        self,
        pool: httpcore.AsyncConnectionPool,
        request: _PinnedRequest,
        body: bytes,
        headers: dict[str, str],
    ) -> tuple[int, str | None]:
        response = await pool.handle_async_request(self._request(request, body, headers))
        try:
            head = await _drain(response.aiter_stream())
        finally:
            await response.aclose()
        # Only a destination that passed the guard is excerpted (see the module's doc).
        return response.status, _excerpt(head) if request.pinned else None

    def _request(
        self, request: _PinnedRequest, body: bytes, headers: dict[str, str]
    ) -> httpcore.Request:
        url = request.url
        fields = {
            "Host": url.netloc.decode("ascii"),
            **_BASE_HEADERS,
            **headers,
            **request.headers,
            "Content-Length": str(len(body)),
        }
        return httpcore.Request(
            b"POST",
            httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=[
                (name.encode("ascii"), value.encode("latin-1")) for name, value in fields.items()
            ],
            content=body,
            extensions={**request.extensions, "timeout": self._timeouts},
        )

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


_BASE_HEADERS = {
    "Accept": "*/*",
    # Raw bytes only: a compressed answer could expand far beyond the excerpt.
    "Accept-Encoding": "identity",
    "Connection": "keep-alive",
    "User-Agent": USER_AGENT,
    "Content-Type": "application/json",
}
# What can go wrong between us and the merchant's server, named as httpx named it.
HTTP_ERRORS = (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol)


async def _drain(chunks: AsyncIterator[bytes]) -> bytes:
    """The answer's first bytes; read to its end (up to `DRAIN_BYTES`) so the connection
    goes back to its pool, else left unread and the connection closed with the response."""
    collected = b""
    downloaded = 0
    async for chunk in chunks:
        if len(collected) < EXCERPT_BYTES:
            collected += chunk[: EXCERPT_BYTES - len(collected)]
        downloaded += len(chunk)
        if downloaded > DRAIN_BYTES:
            break
    return collected


def _excerpt(head: bytes) -> str:
    text = head[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    # Shown in an API answer and a dashboard: no control characters (NUL breaks storage).
    return "".join(c if c.isprintable() or c in "\n\t" else "\ufffd" for c in text)


async def _read_excerpt(chunks: AsyncIterator[bytes]) -> str:
    """At most the first 256 bytes of the answer, printable."""
    return _excerpt(await _drain(chunks))
