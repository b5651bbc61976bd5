import ipaddress

import pytest

from fluxpay_common.ssrf import (
    UnsafeDestination,
    check_addresses,
    check_url,
    refusal_reason,
    without_credentials,
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


# ------------------------------------------------------------------ the URL policy (no DNS)

CODE_OF = {
    "https://user:pass@shop.example.com/hook": "webhook_url_credentials_forbidden",
    "https://token@shop.example.com/hook": "webhook_url_credentials_forbidden",
    "ftp://shop.example.com/hook": "webhook_url_invalid",
    "javascript:alert(1)": "webhook_url_invalid",
    "//shop.example.com/hook": "webhook_url_invalid",
    "https:///hook": "webhook_url_invalid",
    "nope": "webhook_url_invalid",
    "https://shop.example.com:99999/hook": "webhook_url_invalid",
    "https://shop.example.com/a b": "webhook_url_invalid",
    "https://shop.example.com/\x00": "webhook_url_invalid",
    "https://shop.example.com\\@evil.example/": "webhook_url_invalid",
    "https://127.0.0.1/hook": "webhook_url_destination_forbidden",
    "https://[::1]/hook": "webhook_url_destination_forbidden",
    "https://[::ffff:127.0.0.1]/hook": "webhook_url_destination_forbidden",
    "https://169.254.169.254/latest/meta-data": "webhook_url_destination_forbidden",
    "https://10.0.0.7/hook": "webhook_url_destination_forbidden",
    "https://192.168.1.1/hook": "webhook_url_destination_forbidden",
    "https://100.64.0.1/hook": "webhook_url_destination_forbidden",
    "https://[fe80::1]/hook": "webhook_url_destination_forbidden",
    "https://[fd00:ec2::254]/hook": "webhook_url_destination_forbidden",
    "https://localhost/hook": "webhook_url_destination_forbidden",
    "https://api.localhost./hook": "webhook_url_destination_forbidden",
    # What getaddrinfo reads as 127.0.0.1 without DNS.
    "https://2130706433/hook": "webhook_url_destination_forbidden",
    "https://0x7f.0.0.1/hook": "webhook_url_destination_forbidden",
    "https://127.1/hook": "webhook_url_destination_forbidden",
}


@pytest.mark.parametrize(("url", "code"), CODE_OF.items())
@pytest.mark.parametrize("environment", ["test", "live"])
def test_unsafe_urls_are_refused_in_both_environments(url: str, code: str, environment) -> None:
    with pytest.raises(UnsafeDestination) as refused:
        check_url(url, environment)
    assert refused.value.code == code and refused.value.reason


def test_live_requires_https_and_test_allows_http() -> None:
    with pytest.raises(UnsafeDestination) as refused:
        check_url("http://shop.example.com/hook", "live")
    assert refused.value.code == "webhook_url_https_required"
    assert check_url("http://shop.example.com/hook", "test").port == 80


def test_public_urls_are_accepted() -> None:
    for url in (
        "https://shop.example.com/hooks?x=1",
        "https://8.8.8.8:8443/h",
        "https://[2001:4860:4860::8888]/h",
    ):
        check_url(url, "live")


def test_the_development_switch_lifts_the_address_rules_only() -> None:
    assert check_url("http://127.0.0.1:9000/webhooks", "test", allow_private=True).port == 9000
    check_url("https://10.0.0.7/hook", "live", allow_private=True)
    # A live endpoint may use http only to a loopback host, where no network is crossed.
    check_url("http://localhost:9000/webhooks", "live", allow_private=True)
    for url, code in [
        ("http://10.0.0.7/hook", "webhook_url_https_required"),
        ("http://shop.example.com/hook", "webhook_url_https_required"),
        ("https://u:p@127.0.0.1/hook", "webhook_url_credentials_forbidden"),
        ("ftp://127.0.0.1/hook", "webhook_url_invalid"),
    ]:
        with pytest.raises(UnsafeDestination) as refused:
            check_url(url, "live", allow_private=True)
        assert refused.value.code == code


def test_credentials_are_removed_from_a_url_before_it_is_stored_or_shown() -> None:
    assert without_credentials("https://u:p@shop.example.com/h?x=1") == (
        "https://shop.example.com/h?x=1"
    )
    assert without_credentials("https://shop.example.com/h") == "https://shop.example.com/h"
