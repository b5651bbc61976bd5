"""Services answer refusals with domain codes; the gateway alone picks the HTTP status."""

from __future__ import annotations

import pytest

from api_gateway.errors import STATUS_BY_CODE, ApiError
from api_gateway.rpc import raise_for_error
from fluxpay_common.messages import ErrorBody, Reply


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("payment_not_found", 404),
        ("reference_already_exists", 409),
        ("insufficient_balance", 422),
        ("balance_unavailable", 503),
        ("invalid_starting_after", 400),
    ],
)
def test_a_domain_code_becomes_its_http_status(code: str, status: int) -> None:
    with pytest.raises(ApiError) as raised:
        raise_for_error(Reply(error=ErrorBody(code=code, message="m", param="p")))
    assert raised.value.status == status and raised.value.param == "p"


def test_a_code_the_gateway_does_not_list_keeps_the_replys_status_or_is_a_500() -> None:
    with pytest.raises(ApiError) as listed:
        raise_for_error(Reply(error=ErrorBody(code="endpoint_missing", message="m", status=404)))
    with pytest.raises(ApiError) as unlisted:
        raise_for_error(Reply(error=ErrorBody(code="something_new", message="m")))
    assert listed.value.status == 404 and unlisted.value.status == 500


def test_every_code_the_gateway_maps_is_documented() -> None:
    from pathlib import Path

    documented = (Path(__file__).parents[4] / "docs" / "errors.md").read_text()
    assert [code for code in STATUS_BY_CODE if f"`{code}`" not in documented] == []
