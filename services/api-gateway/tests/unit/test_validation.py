from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from api_gateway import validation
from api_gateway.auth import presented_key
from api_gateway.errors import ApiError
from api_gateway.idempotency import parse_key, request_digest
from api_gateway.routes.collect import replayed
from api_gateway.schemas import CollectPaymentCreate
from api_gateway.validation import checked_create

BASE = {
    "reference": "order-1",
    "amount": 3000,
    "currency": "XOF",
    "country": "BJ",
    "operator": "mtn",
    "customer": {"phone": "+22997000001"},
}


def _code(overrides: dict[str, object], environment: str = "test") -> str | None:
    body = CollectPaymentCreate.model_validate({**BASE, **overrides})
    try:
        checked_create(body, environment)
    except ApiError as exc:
        return exc.code
    return None


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({}, None),
        ({"customer": {"phone": "+2290197000001"}}, None),  # Benin's 10-digit numbering
        ({"currency": "XAF"}, "currency_not_supported"),
        ({"operator": "wave"}, "operator_not_supported"),
        ({"customer": {"phone": "+22897000001"}}, "phone_invalid"),
        ({"customer": {"phone": "+22965000001"}}, "phone_operator_mismatch"),
        ({"customer": {}}, "parameter_missing"),
        ({"country": "CI", "operator": "orange", "customer": {"phone": "+2250700000001"}}, None),
        (
            {"country": "CI", "operator": "orange", "customer": {"phone": "+2250500000001"}},
            "phone_operator_mismatch",
        ),
        ({"mode": "hosted", "operator": None, "customer": None}, None),
    ],
)
def test_business_rules(overrides: dict[str, object], code: str | None) -> None:
    clean = {k: v for k, v in overrides.items() if v is not None}
    removed = [k for k, v in overrides.items() if v is None]
    body = {k: v for k, v in {**BASE, **clean}.items() if k not in removed}
    model = CollectPaymentCreate.model_validate(body)
    try:
        checked_create(model, "test")
        found = None
    except ApiError as exc:
        found = exc.code
    assert found == code


def test_live_callbacks_must_be_https() -> None:
    assert _code({"callback_url": "http://shop.example/hook"}, "live") == "callback_url_invalid"
    assert _code({"callback_url": "http://127.0.0.1:9000/hook"}, "test") is None


@pytest.mark.parametrize(
    "bad",
    [
        {"amount": "3000"},
        {"amount": 3000.0},
        {"amount": True},
        {"amount": 99},
        {"operator": None},
        {"customer": None},
        {"reference": ""},
        {"expires_in_seconds": 3601},
        {"callback_url": "ftp://x"},
        {"country": "FR"},
    ],
)
def test_schema_is_strict_and_fields_are_not_nullable(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CollectPaymentCreate.model_validate({**BASE, **bad})


def test_idempotency_digest_ignores_key_order_and_keys_are_uuids() -> None:
    assert request_digest("POST", "/p", {"a": 1, "b": 2}) == request_digest(
        "POST", "/p", {"b": 2, "a": 1}
    )
    assert request_digest("POST", "/p", {"a": 1}) != request_digest("POST", "/p", {"a": 2})
    assert (
        parse_key("6F9619FF-8B86-D011-B42D-00CF4FC964FF") == "6f9619ff-8b86-d011-b42d-00cf4fc964ff"
    )
    with pytest.raises(ApiError) as missing:
        parse_key(None)
    assert missing.value.code == "idempotency_key_missing"


def test_api_key_comes_from_bearer_or_x_api_key() -> None:
    assert presented_key("Bearer abc", None) == "abc"
    assert presented_key(None, "xyz") == "xyz"
    with pytest.raises(ApiError) as exc:
        presented_key("Basic abc", None)
    assert exc.value.status == 401


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("+229 95-00.00 01", "+22995000001"),
        ("+229 (95) 00 00 01", "+22995000001"),
        ("+229\u00a095000001", "+22995000001"),
        ("+22995000001", "+22995000001"),
        ("22995000001", None),  # no country code sign
        ("+229 95 00 00 01 ext 2", None),
        ("+229/95000001", None),
        ("+٢٢٩95000001", None),  # digits, but not ASCII ones
        ("+", None),
    ],
)
def test_phones_are_normalised_to_e164_or_refused(written: str, e164: str | None) -> None:
    assert validation.e164(written) == e164


def test_a_create_goes_on_with_the_phone_in_e164() -> None:
    body = CollectPaymentCreate.model_validate(
        {**BASE, "operator": "moov", "customer": {"phone": "+229 95-00.00 01", "first_name": "A"}}
    )
    checked = checked_create(body, "test")
    assert checked.customer.phone == "+22995000001"
    assert checked.customer.first_name == "A"
    assert _code({"customer": {"phone": "+229 95 00 00 01 (bureau)"}}) == "phone_invalid"
    assert _code({"mode": "hosted", "customer": {"phone": "n/a"}}) == "phone_invalid"


@pytest.mark.parametrize(
    "reference", ["a/b", "a\\b", "a?b", "a#b", "50%off", ".", "..", "export.csv"]
)
def test_a_reference_that_cannot_be_read_back_is_refused(reference: str) -> None:
    with pytest.raises(ValidationError, match="readable back"):
        CollectPaymentCreate.model_validate({**BASE, "reference": reference})


@pytest.mark.parametrize(
    "reference", ["order-1001", "550e8400-e29b-41d4-a716-446655440000", "A.b_c:1"]
)
def test_usual_references_are_accepted(reference: str) -> None:
    assert (
        CollectPaymentCreate.model_validate({**BASE, "reference": reference}).reference == reference
    )


def test_a_replayed_success_is_200_and_a_replayed_refusal_keeps_its_status() -> None:
    refund = replayed(201, {"object": "collect.refund", "idempotent_replay": False})
    assert refund.status_code == 200 and refund.headers["Idempotent-Replayed"] == "true"
    assert orjson.loads(refund.body)["idempotent_replay"] is True
    refused = replayed(422, {"error": {"code": "insufficient_balance"}})
    assert refused.status_code == 422 and "idempotent_replay" not in orjson.loads(refused.body)
