"""Pinned https requests: TLS verified for the merchant's hostname at the checked address,
and a kept-alive connection never carries another hostname's request."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fluxpay_common import ssrf
from tests.support.receiver import WebhookReceiver  # importable: conftest ensured it
from webhook_dispatcher.adapters import http_sender
from webhook_dispatcher.adapters.http_sender import WebhookSender

LOOPBACK = ipaddress.ip_address("127.0.0.1")
BODY = b'{"id":"evt_tls_test"}'


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: str, issuer: str, key: ec.EllipticCurvePrivateKey, public: object, ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
        )
    return builder.sign(key, hashes.SHA256())


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[ssl.SSLContext, ssl.SSLContext]]:
    """(server context for `shop.invalid`, client context trusting only the test CA)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Test CA", "Test CA", ca_key, ca_key.public_key(), ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate("shop.invalid", "Test CA", ca_key, key.public_key(), ca=False)
    (tmp_path / "leaf.pem").write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "leaf.pem")
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    yield server, client


@pytest.fixture
def pinned_to_loopback(monkeypatch) -> None:
    """The receiver listens on loopback: let loopback stand in for a public address here."""
    monkeypatch.setattr(http_sender, "check_addresses", lambda addresses: addresses[0])


async def _loopback(host: str, port: int) -> list[ssrf.IPAddress]:
    return [LOOPBACK]  # every merchant name on one address


async def test_pinned_https_verifies_the_hostname_and_never_shares_a_connection_across_names(
    tls, pinned_to_loopback
) -> None:
    server_context, client_context = tls
    receiver = WebhookReceiver().start(ssl_context=server_context)
    port = receiver.url.split(":")[2].split("/")[0]
    try:
        async with WebhookSender(
            timeout_seconds=2, max_connections=4, resolver=_loopback, ssl_context=client_context
        ) as sender:
            first = await sender.send(f"https://shop.invalid:{port}/webhooks", "live", BODY, {})
            again = await sender.send(f"https://shop.invalid:{port}/webhooks", "live", BODY, {})
            # Same address, kept-alive connection verified for shop.invalid: not for this one.
            other = await sender.send(f"https://other.invalid:{port}/webhooks", "live", BODY, {})
    finally:
        receiver.stop()
    assert first.succeeded and again.succeeded, (first, again)
    assert first.response_excerpt == "ok"
    assert not other.succeeded and other.status_code is None
    assert other.error is not None and "certificate" in other.error.lower(), other.error
    received = receiver.snapshot()
    assert len(received) == 2 and {r.headers["Host"] for r in received} == {f"shop.invalid:{port}"}
    assert received[0].peer == received[1].peer, "the verified connection was reused"
