"""The SSRF guard of a dispatcher without the development switch: test events as live ones.

This module runs its own `fluxpay-webhooks` without FLUXPAY_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS
(the other modules' worker has it, to reach the local receiver).
"""

from __future__ import annotations

import uuid

import pytest
from fluxpay_testing.infra import wait_for

SECRET = "whsec_integration_guard"
WORKER_ENV_OVERRIDES = {"FLUXPAY_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS": "false"}


async def _refused_until_dead(events, rows, message) -> list[object]:
    await events.publish(message)
    dead = await wait_for(
        lambda: rows.delivery_in(message.message_id, "dead"), timeout=30, what="dead delivery"
    )
    attempts = await rows.attempts(message.message_id)
    assert dead["attempt_count"] == len(attempts) == 4
    return attempts


@pytest.mark.parametrize("environment", ["test", "live"])
async def test_an_event_to_a_local_receiver_is_refused_and_never_sent(
    worker, events, rows, webhook_receiver, merchant_id: uuid.UUID, environment
) -> None:
    await events.publish(events.endpoint_changed(merchant_id, webhook_receiver.url, [SECRET]))
    attempts = await _refused_until_dead(
        events, rows, events.payment_completed(merchant_id, environment=environment)
    )
    assert all("destination refused" in a["error"] for a in attempts), attempts
    assert all(a["status_code"] is None and a["response_excerpt"] is None for a in attempts)
    assert webhook_receiver.snapshot() == []


async def test_a_name_that_resolves_to_loopback_is_refused_after_resolution(
    worker, events, rows, webhook_receiver, merchant_id: uuid.UUID
) -> None:
    # As a merchant's DNS name pointing inside would be (resolved at each attempt).
    port = webhook_receiver.url.split(":")[2].split("/")[0]
    callback = events.payment_completed(
        merchant_id, callback_url=f"http://localhost:{port}/webhooks"
    )
    await events.publish(events.endpoint_changed(merchant_id, None, [SECRET]))
    attempts = await _refused_until_dead(events, rows, callback)
    assert all("loopback" in a["error"] for a in attempts), attempts
    assert webhook_receiver.snapshot() == []
