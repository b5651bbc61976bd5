"""The edge's pure rules on raw input: what is refused, and the field named for it."""

from __future__ import annotations

import json

import pytest

from api_gateway.input_rules import Limits, check_json_body, check_query

LIMITS = Limits()


def _refusal(document: str | bytes) -> tuple[str, str | None] | None:
    raw = document.encode() if isinstance(document, str) else document
    refusal = check_json_body(raw, LIMITS)
    return None if refusal is None else (refusal.code, refusal.param)


@pytest.mark.parametrize(
    ("document", "param"),
    [
        ({"reference": "a\u0000b"}, "reference"),
        ({"customer": {"first_name": "\u0000"}}, "customer.first_name"),
        ({"metadata": {"k\u0000": "v"}}, "metadata.k\ufffd"),
        ({"metadata": {"k": ["ok", "\u0001"]}}, "metadata.k.1"),
        ({"reason": "\udc80"}, "reason"),  # a lone surrogate, written as a JSON escape
        ({"description": "\u007f"}, "description"),
    ],
)
def test_nul_control_characters_and_lone_surrogates_are_refused_with_their_field(
    document: object, param: str
) -> None:
    assert _refusal(json.dumps(document)) == ("invalid_characters", param)


def test_free_text_keeps_tabs_newlines_and_any_language() -> None:
    assert _refusal(json.dumps({"description": "Ligne 1\n\tLigne 2 — 日本 🇧🇯"})) is None


def test_invalid_utf8_in_a_string_names_the_field() -> None:
    assert _refusal(b'{"customer": {"last_name": "Ad\xe9"}}') == (
        "invalid_characters",
        "customer.last_name",
    )


def test_invalid_utf8_outside_strings_and_other_encodings_are_not_json() -> None:
    assert _refusal(b'{"a": 1}\xff') == ("invalid_json", None)
    assert _refusal('{"a": 1}'.encode("utf-16")) == ("invalid_json", None)
    assert _refusal('{"a": NaN}') == ("number_out_of_range", "a")


@pytest.mark.parametrize(
    ("document", "param"),
    [
        ('{"amount": ' + "9" * 5000 + "}", "amount"),
        ('{"metadata": {"n": 9223372036854775808}}', "metadata.n"),
        ('{"metadata": {"n": 1e400}}', "metadata.n"),
        ('{"x": [0.' + "1" * 60 + "]}", "x.0"),
    ],
)
def test_numbers_no_service_can_hold_are_refused(document: str, param: str) -> None:
    assert _refusal(document) == ("number_out_of_range", param)


def test_usual_numbers_pass() -> None:
    assert _refusal('{"amount": 3000, "metadata": {"n": -9223372036854775808, "f": 1.5}}') is None


def test_deep_nesting_is_refused_where_it_happens_without_recursing() -> None:
    deep = '{"metadata": {"a": ' + '{"b": ' * 100_000 + "1" + "}" * 100_001 + "}"
    code, param = _refusal(deep) or ("", "")
    assert code == "nesting_too_deep"
    assert param is not None and param.startswith("metadata.a.b.b")
    assert _refusal("[" * 50_000 + "]" * 50_000) == ("nesting_too_deep", ".".join(["0"] * 20))


def test_nesting_within_the_limit_and_brackets_in_strings_pass() -> None:
    assert _refusal(json.dumps({"description": "[" * 500, "metadata": {"a": [[{"b": 1}]]}})) is None


def test_metadata_has_stripe_bounds() -> None:
    assert _refusal(json.dumps({"metadata": {str(i): i for i in range(50)}})) is None
    assert _refusal(json.dumps({"metadata": {str(i): i for i in range(51)}})) == (
        "parameter_invalid",
        "metadata",
    )
    assert _refusal(json.dumps({"metadata": {"k" * 41: 1}})) == (
        "parameter_invalid",
        "metadata." + "k" * 41,
    )
    assert _refusal(json.dumps({"metadata": {"": 1}})) == ("parameter_invalid", "metadata.")
    assert _refusal(json.dumps({"metadata": {"k": "v" * 500}})) is None
    assert _refusal(json.dumps({"metadata": {"k": "v" * 501}})) == (
        "parameter_invalid",
        "metadata.k",
    )
    assert _refusal(json.dumps({"metadata": {"k": ["v" * 250, "v" * 250]}})) == (
        "parameter_invalid",
        "metadata.k",
    )


def test_query_parameters_with_nul_are_refused_by_name() -> None:
    assert check_query([("limit", "10"), ("type", "collect.payment.created")]) is None
    refusal = check_query([("limit", "10"), ("starting_after", "\x00")])
    assert refusal is not None and refusal.param == "starting_after"
    assert refusal.code == "invalid_characters"
