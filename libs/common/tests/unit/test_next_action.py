"""The seed types `NextAction.message` as a string: never null, whatever the status."""

from __future__ import annotations

import typing

import pytest

from fluxpay_common.messages import NextAction, NextActionType


@pytest.mark.parametrize("kind", typing.get_args(NextActionType))
def test_every_next_action_has_a_string_message(kind: str) -> None:
    wire = NextAction(type=kind).model_dump(mode="json")  # type: ignore[arg-type]
    assert isinstance(wire["message"], str) and wire["message"]


def test_a_completed_payment_read_back_with_a_null_message_gets_its_sentence() -> None:
    parsed = NextAction.model_validate({"type": "none", "message": None})
    assert parsed.message == "Aucune action requise."
