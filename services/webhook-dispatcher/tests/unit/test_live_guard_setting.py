from __future__ import annotations

import pytest
from pydantic import ValidationError

from webhook_dispatcher.config import Settings


def test_the_live_guard_can_only_be_lowered_in_development() -> None:
    assert Settings(webhook_live_guard=False).webhook_live_guard is False
    with pytest.raises(ValidationError, match="only allowed in development"):
        Settings(
            webhook_live_guard=False,
            deployment="production",
            secrets_key="x" * 43 + "=",
        )
    assert Settings().webhook_live_guard is True
