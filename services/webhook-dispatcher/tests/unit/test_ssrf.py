import ipaddress

import pytest

from webhook_dispatcher.domain.ssrf import (
    UnsafeDestination,
    check_addresses,
    check_url,
    refusal_reason,
)

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "metadata"),
    ("169.254.10.1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("224.0.0.251", "multicast"),
    ("239.255.255.250", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("255.255.255.255", "private"),
    ("240.0.0.1", "private"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fd00:ec2::254", "metadata"),
    ("fe80::1", "link-local"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "metadata"),
    ("2002:0a00:0001::1", "private"),  # 6to4 wrapping 10.0.0.1
    ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 wrapping 169.254.169.254
]
ALLOWED = ["8.8.8.8", "41.202.219.1", "197.159.1.10", "2001:4860:4860::8888", "::ffff:8.8.8.8"]


@pytest.mark.parametrize(("address", "kind"), REFUSED)
def test_non_public_addresses_are_refused_with_their_reason(address: str, kind: str) -> None:
    reason = refusal_reason(ipaddress.ip_address(address))
    assert reason is not None and kind in reason


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


def test_one_private_answer_among_public_ones_refuses_the_host() -> None:
    addresses = [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.5")]
    with pytest.raises(UnsafeDestination, match=r"10\.0\.0\.5"):
        check_addresses(addresses)


def test_the_first_checked_address_is_the_one_pinned() -> None:
    addresses = [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("8.8.4.4")]
    assert check_addresses(addresses) == ipaddress.ip_address("8.8.8.8")


def test_a_host_that_resolves_to_nothing_is_refused() -> None:
    with pytest.raises(UnsafeDestination):
        check_addresses([])


@pytest.mark.parametrize(
    "url",
    [
        "http://shop.example.com/hook",
        "ftp://shop.example.com/",
        "//shop.example.com/",
        "https:///x",
    ],
)
def test_live_accepts_only_https_urls_with_a_host(url: str) -> None:
    with pytest.raises(UnsafeDestination):
        check_url(url, "live")


def test_live_https_url_gives_host_and_default_port() -> None:
    destination = check_url("https://Shop.Example.com/hooks?x=1", "live")
    assert (destination.host, destination.port) == ("shop.example.com", 443)


def test_test_environment_allows_local_http() -> None:
    destination = check_url("http://127.0.0.1:9000/webhooks", "test")
    assert (destination.scheme, destination.host, destination.port) == ("http", "127.0.0.1", 9000)
