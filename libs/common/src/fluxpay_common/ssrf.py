"""SSRF policy for merchant-supplied webhook URLs (pure: the caller resolves the host).

One policy, applied twice: when a URL is saved (the gateway refuses it with a reason the
merchant can act on) and before every delivery (the dispatcher refuses it again after
resolving the host, since DNS can change after the URL was saved).

- The URL is an absolute http(s) URL with a host, without `user:password@` (credentials
  would be stored and logged in plain text) nor characters that URL parsers read
  differently (whitespace, control characters, backslashes).
- `live` requires https; `test` also allows http.
- Every address the host is, or resolves to, must be public unicast: no loopback, private,
  link-local (the cloud metadata service), carrier-grade NAT, multicast, reserved or
  unspecified address, nor an IPv6 form carrying one (mapped, 6to4, Teredo, NAT64). This
  holds in `test` as in `live`: a test key must not make our servers read our own network.
- The one exception is development: `allow_private` (a development-only setting) lifts the
  address rules so a receiver on 127.0.0.1 can be used, and lets a `live` endpoint use http
  only when its host is loopback (no network is crossed). It never lifts the other rules.

The dispatcher sends to the address it checked (pinned), so a DNS answer that changes
between check and connect cannot slip a private address in.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Environment = Literal["test", "live"]
# Stable codes, shown to merchants as the ApiError `code` (docs/errors.md).
RefusalCode = Literal[
    "webhook_url_invalid",
    "webhook_url_credentials_forbidden",
    "webhook_url_https_required",
    "webhook_url_destination_forbidden",
]

CGNAT = ipaddress.ip_network("100.64.0.0/10")
METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, RFC 6052 / 8215).
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
MAX_URL_LENGTH = 2048


class UnsafeDestination(ValueError):
    """The URL or one of its addresses may not be called in this environment."""

    def __init__(self, reason: str, code: RefusalCode = "webhook_url_destination_forbidden"):
        super().__init__(reason)
        self.code: RefusalCode = code
        self.reason = reason


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int


def check_url(url: str, environment: Environment, *, allow_private: bool = False) -> Destination:
    """The URL's scheme, host and port, or UnsafeDestination with its code and reason.

    Everything that can be decided without DNS: shape, credentials, scheme and a host that
    is a literal address (or `localhost`). The resolved addresses are `check_addresses`'.
    """
    parts = _parse(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeDestination("the port is not a number from 1 to 65535", _INVALID) from exc
    loopback = _is_loopback_host(host)
    if environment == "live" and scheme == "http" and not (allow_private and loopback):
        raise UnsafeDestination(
            "live webhook endpoints must use https", "webhook_url_https_required"
        )
    if not allow_private:
        _refuse_literal_destination(host)
    return Destination(scheme, parts.hostname or "", port)


def check_addresses(addresses: list[IPAddress]) -> IPAddress:
    """Every resolved address must be public; returns the one to connect to (pinned)."""
    if not addresses:
        raise UnsafeDestination("the host did not resolve")
    for address in addresses:
        if reason := refusal_reason(address):
            raise UnsafeDestination(f"{address} is a {reason}")
    return addresses[0]


def refusal_reason(address: IPAddress) -> str | None:
    """Why `address` must not be called, or None when it is public."""
    if address in METADATA:
        return "cloud metadata address"
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        inner = refusal_reason(embedded)
        return f"IPv4-embedding address of a {inner}" if inner else None
    for reason, refused in _CLASSES:
        if refused(address):
            return reason
    return None


def without_credentials(url: str) -> str:
    """The URL without `user:password@`, as it may be stored, logged or shown."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


_INVALID: RefusalCode = "webhook_url_invalid"


def _parse(url: str) -> SplitResult:
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeDestination(f"the URL is longer than {MAX_URL_LENGTH} characters", _INVALID)
    if any(c.isspace() or not c.isprintable() or c == "\\" for c in url):
        raise UnsafeDestination(
            "the URL contains whitespace, control characters or backslashes", _INVALID
        )
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise UnsafeDestination(
            "the URL must be an absolute https (or, in test, http) URL", _INVALID
        )
    if "@" in parts.netloc:
        raise UnsafeDestination(
            "the URL must not contain credentials (user:password@); authenticate webhooks"
            " with their X-FluxPay-Signature",
            "webhook_url_credentials_forbidden",
        )
    if not parts.hostname:
        raise UnsafeDestination("the URL has no host", _INVALID)
    return parts


def _refuse_literal_destination(host: str) -> None:
    if _is_localhost_name(host):
        raise UnsafeDestination(f"{host} is a loopback name")
    address = _literal_address(host)
    if address is not None and (reason := refusal_reason(address)):
        raise UnsafeDestination(f"{address} is a {reason}")


def _is_localhost_name(host: str) -> bool:
    host = host.lower()
    return host == "localhost" or host.endswith(".localhost")


def _is_loopback_host(host: str) -> bool:
    if _is_localhost_name(host):
        return True
    address = _literal_address(host)
    if address is None:
        return False
    embedded = _embedded_ipv4(address)
    return (embedded or address).is_loopback


def _literal_address(host: str) -> IPAddress | None:
    """The address a host names without DNS, in every form a resolver accepts.

    `127.1`, `0x7f.0.0.1` and `2130706433` all reach 127.0.0.1 through getaddrinfo.
    """
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _is_cgnat(address: IPAddress) -> bool:
    return isinstance(address, ipaddress.IPv4Address) and address in CGNAT


_CLASSES: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("unspecified address", lambda a: a.is_unspecified),
    ("loopback address", lambda a: a.is_loopback),
    ("link-local address", lambda a: a.is_link_local),
    ("carrier-grade NAT address", _is_cgnat),
    ("multicast address", lambda a: a.is_multicast),
    ("private address", lambda a: a.is_private),
    ("reserved address", lambda a: a.is_reserved),
    ("non-global address", lambda a: not a.is_global),
)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, Teredo, NAT64), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
