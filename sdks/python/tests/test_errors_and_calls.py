"""Typed errors from ApiError bodies, and the calls the resources make."""

from __future__ import annotations

import pytest

from fluxpay import _calls
from fluxpay.errors import (
    APIError,
    AuthenticationError,
    ConflictError,
    IdempotencyError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    UnprocessableError,
    error_from_response,
)


def api_error(code: str, kind: str = "invalid_request_error", param: str | None = None) -> dict:
    return {"error": {"type": kind, "code": code, "message": f"{code}!", "param": param,
                      "doc_url": f"https://docs.fluxxpay.me/errors#{code}"}}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "kind", "cls"),
    [
        (400, "invalid_request_error", InvalidRequestError),
        (401, "authentication_error", AuthenticationError),
        (404, "invalid_request_error", NotFoundError),
        (409, "invalid_request_error", ConflictError),
        (409, "idempotency_error", IdempotencyError),
        (422, "invalid_request_error", UnprocessableError),
        (429, "rate_limit_error", RateLimitError),
        (503, "api_error", APIError),
    ],
)
def test_each_status_has_its_exception_with_the_api_error_fields(status, kind, cls) -> None:
    exc = error_from_response(status, api_error("c", kind, "amount"), {"X-Request-Id": "r"}, "r")
    assert type(exc) is cls
    assert (exc.http_status, exc.code, exc.param, exc.type) == (status, "c", "amount", kind)
    assert exc.doc_url == "https://docs.fluxxpay.me/errors#c" and exc.request_id == "r"
    assert "c" in str(exc) and "amount" in str(exc) and "r" in str(exc)


def test_a_body_that_is_not_an_api_error_still_gives_a_typed_error() -> None:
    exc = error_from_response(502, "<html>Bad gateway</html>", {}, None)
    assert isinstance(exc, APIError) and exc.code is None and exc.http_status == 502


def test_each_create_gets_its_own_idempotency_key_unless_one_is_given() -> None:
    first = _calls.create_payment({"reference": "a"}, None)
    second = _calls.create_payment({"reference": "a"}, None)
    assert first.idempotency_key and second.idempotency_key
    assert first.idempotency_key != second.idempotency_key
    assert _calls.create_payment({}, "mine").idempotency_key == "mine"
    assert _calls.create_refund("p", {}, None).idempotency_key


def test_a_reference_is_one_path_segment() -> None:
    call = _calls.retrieve_payment("order/1?x=#y")
    assert call.path == "/collect/payments/order%2F1%3Fx%3D%23y"


def test_absent_optional_fields_are_not_sent() -> None:
    body = _calls.payment_body(reference="r", amount=3000, currency="XOF", country="BJ",
                               mode="direct", operator="mtn", customer=None,
                               phone="+22997000001", description=None)  # fmt: skip
    call = _calls.create_payment(body, None)
    assert call.json == {"reference": "r", "amount": 3000, "currency": "XOF", "country": "BJ",
                         "mode": "direct", "operator": "mtn",
                         "customer": {"phone": "+22997000001"}}  # fmt: skip
