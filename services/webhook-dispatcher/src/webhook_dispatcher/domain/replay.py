"""When a merchant may replay events or send a test event, and which events "failed".

A replay is refused rather than scheduled into a certain skip: an event bound for a disabled
endpoint would only be recorded as `endpoint_disabled` again. The merchant fixes the
endpoint first (configuring it again re-enables it), then replays.
"""

from __future__ import annotations

from typing import Literal

from webhook_dispatcher.domain.delivery import DeliveryStatus, Endpoint

Refusal = Literal["endpoint_not_found", "endpoint_disabled"]

# Deliveries that ended without reaching the merchant and that a replay can fix: retries
# exhausted (or 410 Gone), or never sent because the endpoint was disabled.
REPLAYABLE: tuple[DeliveryStatus, ...] = ("dead", "endpoint_disabled")


def replay_refusal(callback_url: str | None, endpoint: Endpoint | None) -> Refusal | None:
    """Why a delivery to `callback_url` (or, when None, the merchant's endpoint) cannot go.

    A payment's own callback_url does not depend on the merchant's endpoint being enabled.
    """
    if callback_url:
        return None
    if endpoint is None or endpoint.url is None:
        return "endpoint_not_found"
    if endpoint.disabled_at is not None:
        return "endpoint_disabled"
    return None
