"""Every error code the gateway can answer is documented in docs/errors.md, and the
framework's own refusals have documented codes too (there is no catch-all `http_error`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api_gateway import errors

ROOT = Path(__file__).resolve().parents[4]
SOURCE = ROOT / "services" / "api-gateway" / "src" / "api_gateway"
# `ApiError(400, "code", ...` and `Refusal(400, "code", ...`, on one line or several.
RAISED = re.compile(r'(?:ApiError|Refusal)\(\s*\d{3},\s*"([a-z_]+)"')


def _documented() -> set[str]:
    table = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| \d{3} \| `([a-z_]+)` \|", table, re.MULTILINE))


def test_every_code_raised_by_the_gateway_is_documented() -> None:
    raised = {c for f in SOURCE.rglob("*.py") for c in RAISED.findall(f.read_text("utf-8"))}
    assert {"invalid_characters", "request_too_large", "nesting_too_deep"} <= raised
    assert raised - _documented() == set()


@pytest.mark.parametrize("status", [400, 404, 405, 413, 418, 500, 503])
def test_framework_refusals_have_documented_codes(status: int) -> None:
    error = errors.http_error(status)
    assert error.code in _documented() and error.code != "http_error"
