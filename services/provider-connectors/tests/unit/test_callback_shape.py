"""A verified callback is still checked for shape before anything is stored."""

from __future__ import annotations

import uuid

import pytest

from provider_connectors.connectors.payloads import text
from provider_connectors.domain.callback_shape import shape_problem
from provider_connectors.domain.model import CallbackEvent, ProviderResult


def test_a_well_formed_event_passes() -> None:
    event = CallbackEvent("evt-1", "payin.confirmed", payment_id=uuid.uuid4(), psp_reference="tr_1")
    assert shape_problem(event) is None


@pytest.mark.parametrize(
    "event",
    [
        CallbackEvent("evt\x00", "payin.confirmed"),
        CallbackEvent("evt-1", "payin.confirmed", psp_reference="tr\x00"),
        CallbackEvent("evt-1", "payin.confirmed", psp_reference={"id": 1}),  # type: ignore[arg-type]
        CallbackEvent("", "payin.confirmed"),
        CallbackEvent("e" * 1000, "payin.confirmed"),
        CallbackEvent(
            "evt-1",
            "invoice.paid",
            result=ProviderResult(status="failed", data={"reason": "no\x00"}),
        ),
        CallbackEvent(
            "evt-1",
            "invoice.paid",
            result=ProviderResult(status="completed", checkout_url={"u": 1}),  # type: ignore[arg-type]
        ),
    ],
)
def test_nul_characters_objects_and_huge_ids_are_refused(event: CallbackEvent) -> None:
    assert shape_problem(event) is not None


def test_an_object_where_text_belongs_is_malformed() -> None:
    assert text({"id": 42}, "id") == "42"
    with pytest.raises(ValueError):
        text({"id": {"nested": "x"}}, "id")
