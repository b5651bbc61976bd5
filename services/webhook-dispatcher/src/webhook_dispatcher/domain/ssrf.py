"""SSRF guard for merchant-supplied webhook URLs (pure: the caller resolves the host).

In `live` a merchant URL must be https and every address its host resolves to must be a
public unicast address: otherwise a merchant could make our servers call into our own
network (databases, the cloud metadata service). The request is then sent to the address
that was checked (pinned), so a DNS answer that changes between check and connect cannot
slip a private address in. In `test` everything is allowed: local development posts to
http://127.0.0.1.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from fluxpay_common.messages import Environment

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CGNAT = ipaddress.ip_network("100.64.0.0/10")
METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, RFC 6052 / 8215).
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class UnsafeDestination(ValueError):
    """The URL or one of its addresses may not be called in this environment."""


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int


def check_url(url: str, environment: Environment) -> Destination:
    """The URL's scheme, host and port, or UnsafeDestination."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    allowed = ("https",) if environment == "live" else ("http", "https")
    if scheme not in allowed:
        raise UnsafeDestination(f"scheme {scheme or 'none'!r} not allowed in {environment}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeDestination("invalid port") from exc
    if not parts.hostname:
        raise UnsafeDestination("no host")
    return Destination(scheme, parts.hostname, port)


def refusal_reason(address: IPAddress) -> str | None:
    """Why `address` must not be called from production, or None when it is public."""
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


def check_addresses(addresses: list[IPAddress]) -> IPAddress:
    """Every resolved address must be public; returns the one to connect to (pinned)."""
    if not addresses:
        raise UnsafeDestination("host did not resolve")
    for address in addresses:
        if reason := refusal_reason(address):
            raise UnsafeDestination(f"{address} is a {reason}")
    return addresses[0]


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
