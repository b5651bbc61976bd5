"""Metadata is refused at the edge when another service could not carry it (JSON int64)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api_gateway.schemas import CollectRefundCreate


def test_metadata_integer_beyond_64_bits_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        CollectRefundCreate(metadata={"order": {"lines": [1, 2**63]}})
    assert refused.value.errors()[0]["loc"][0] == "metadata"


def test_metadata_within_64_bits_is_kept() -> None:
    kept = CollectRefundCreate(metadata={"order": {"lines": [-(2**63), 2**63 - 1, True]}})
    assert kept.metadata["order"]["lines"][1] == 2**63 - 1
