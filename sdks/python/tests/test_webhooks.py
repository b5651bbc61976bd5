"""Signature vectors for `fluxpay.webhooks.construct_event`: what a merchant's handler
must accept and refuse. The expected v1 values are computed independently (hashlib/hmac
over `{t}.{raw_body}`), as the README's snippet does."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from fluxpay import SignatureVerificationError, construct_event
from fluxpay.models import Event
from fluxpay.webhooks import generate_test_header, verify_header

SECRET = "whsec_current_0123456789abcdef"
OLD_SECRET = "whsec_previous_fedcba9876543210"
PAYMENT = {
    "object": "collect.payment",
    "id": "5b1f4e0a-2f6e-4c1e-9a51-6b1c1f2d3e4f",
    "reference": "order-1001",
    "status": "completed",
    "amount": 3000,
    "currency": "XOF",
    "country": "BJ",
    "mode": "direct",
    "environment": "test",
    "created_at": "2026-11-30T10:00:00+00:00",
}
EVENT = {
    "id": "0d9b6a3c-1111-4e2f-8c0a-3a5b7c9d1e2f",
    "object": "event",
    "api_version": "2026-06",
    "type": "collect.payment.completed",
    "created": 1_795_000_000,
    "environment": "test",
    "merchant_id": "7a3c5e1f-2222-4b6d-9e8f-0a1b2c3d4e5f",
    "data": {"object": PAYMENT},
}
BODY = json.dumps(EVENT, separators=(",", ":")).encode()


def v1(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def header(t: int, *secrets: str, body: bytes = BODY) -> str:
    return ",".join([f"t={t}", *(f"v1={v1(s, t, body)}" for s in secrets)])


def test_a_valid_signature_gives_the_typed_event() -> None:
    event = construct_event(BODY, header(int(time.time()), SECRET), SECRET)
    assert isinstance(event, Event)
    assert event.type == "collect.payment.completed"
    assert event.data.object.reference == "order-1001" and event.data.object.amount == 3000


def test_a_str_body_is_verified_as_its_utf8_bytes() -> None:
    event = construct_event(BODY.decode(), header(int(time.time()), SECRET), SECRET)
    assert event.id == EVENT["id"]


def test_a_tampered_body_is_refused() -> None:
    signed = header(int(time.time()), SECRET)
    tampered = BODY.replace(b'"amount":3000', b'"amount":30000')
    assert tampered != BODY
    with pytest.raises(SignatureVerificationError, match="No signature matches"):
        construct_event(tampered, signed, SECRET)


def test_a_reserialized_body_is_refused() -> None:
    signed = header(int(time.time()), SECRET)
    with pytest.raises(SignatureVerificationError):
        construct_event(json.dumps(EVENT).encode(), signed, SECRET)


def test_a_wrong_secret_is_refused() -> None:
    with pytest.raises(SignatureVerificationError):
        construct_event(BODY, header(int(time.time()), SECRET), "whsec_someone_else")


def test_a_stale_timestamp_is_refused_even_when_correctly_signed() -> None:
    stale = int(time.time()) - 301
    with pytest.raises(SignatureVerificationError, match="tolerance"):
        construct_event(BODY, header(stale, SECRET), SECRET)


def test_a_timestamp_far_in_the_future_is_refused() -> None:
    with pytest.raises(SignatureVerificationError, match="tolerance"):
        construct_event(BODY, header(int(time.time()) + 3600, SECRET), SECRET)


def test_the_tolerance_is_the_callers() -> None:
    old = int(time.time()) - 1000
    assert construct_event(BODY, header(old, SECRET), SECRET, tolerance=2000).id == EVENT["id"]


def test_during_rotation_either_secret_verifies_the_two_v1_header() -> None:
    """FluxPay signs with the new and the old secret while the overlap lasts."""
    rotating = header(int(time.time()), SECRET, OLD_SECRET)
    assert construct_event(BODY, rotating, SECRET).id == EVENT["id"]
    assert construct_event(BODY, rotating, OLD_SECRET).id == EVENT["id"]
    with pytest.raises(SignatureVerificationError):
        construct_event(BODY, rotating, "whsec_neither")


def test_a_merchant_may_pass_both_its_secrets() -> None:
    only_new = header(int(time.time()), SECRET)
    assert construct_event(BODY, only_new, [OLD_SECRET, SECRET]).id == EVENT["id"]


@pytest.mark.parametrize("bad", [None, "", "v1=abc", "t=123", "t=abc,v1=abc", "garbage"])
def test_a_missing_or_malformed_header_is_refused(bad: str | None) -> None:
    with pytest.raises(SignatureVerificationError):
        construct_event(BODY, bad, SECRET)


def test_a_signed_body_that_is_not_an_event_is_refused() -> None:
    body = b'{"hello": "world"}'
    with pytest.raises(SignatureVerificationError, match="not a FluxPay event"):
        construct_event(body, header(int(time.time()), SECRET, body=body), SECRET)


def test_a_refund_event_carries_the_refund() -> None:
    refund = {"id": "r1", "payment_id": PAYMENT["id"], "reference": "order-1001",
              "status": "failed", "amount": 1500, "currency": "XOF"}  # fmt: skip
    body = json.dumps({**EVENT, "type": "collect.refund.failed",
                       "data": {"object": PAYMENT, "refund": refund}}).encode()  # fmt: skip
    event = construct_event(body, generate_test_header(body, SECRET), SECRET)
    assert event.data.refund is not None and event.data.refund.status == "failed"


def test_the_test_header_matches_the_platform_format() -> None:
    t = 1_795_000_000
    assert generate_test_header(BODY, [SECRET, OLD_SECRET], t) == header(t, SECRET, OLD_SECRET)
    verify_header(BODY, header(t, SECRET), SECRET, now=t + 10)
