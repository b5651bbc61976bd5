"""Retries, restarts and secret rotation against the real dispatcher process."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from fluxpay_testing.infra import wait_for

from fluxpay_common import signing
from fluxpay_common.ids import utcnow

SECRET = "whsec_integration_current"
OLD_SECRET = "whsec_integration_previous"
HOUR = timedelta(hours=1)


def _event_ids(receiver) -> list[str]:
    return [r.headers.get("X-FluxPay-Event-Id", "") for r in receiver.snapshot()]


async def test_event_is_delivered_once_signed_after_a_failure_and_a_timeout(
    worker, events, rows, webhook_receiver, merchant_id: uuid.UUID
) -> None:
    # (status, seconds before answering): 1.5 s is beyond the 1 s attempt budget, a timeout.
    answers = iter([(500, 0.0), (200, 1.5), (200, 0.0)])

    def respond(_: object) -> int:
        status, delay = next(answers, (200, 0.0))
        time.sleep(delay)
        return status

    webhook_receiver.respond = respond
    await events.publish(events.endpoint_changed(merchant_id, webhook_receiver.url, [SECRET]))
    message = events.payment_completed(merchant_id)
    await events.publish(message)

    delivered = await wait_for(
        lambda: rows.delivery_in(message.message_id, "succeeded", "dead"),
        timeout=30,
        what="the delivery to finish",
    )
    assert delivered["status"] == "succeeded" and delivered["attempt_count"] == 3
    assert delivered["next_attempt_at"] is None
    attempts = await rows.attempts(message.message_id)
    assert [a["status_code"] for a in attempts] == [500, None, 200]
    assert "timed out" in attempts[1]["error"]
    assert [a["succeeded"] for a in attempts] == [False, False, True]
    # A receiver reached only through the development switch is never excerpted.
    assert attempts[2]["response_excerpt"] is None

    received = webhook_receiver.snapshot()
    assert _event_ids(webhook_receiver) == [str(message.message_id)] * 3
    assert len({r.body for r in received}) == 1, "every retry sends the same bytes"
    assert len(webhook_receiver.verified_events(SECRET)) == 3
    first, second, third = (r.at for r in received)
    assert second - first >= 0.9, "second attempt about 1 s after the first"
    assert third - second >= 1.0 + 0.9, "third attempt about 1 s after the 1 s timeout"
    headers = received[0].headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "FluxPay-Webhooks/2026-06"


async def test_dispatcher_crashed_mid_schedule_still_delivers(
    worker, events, rows, webhook_receiver, merchant_id: uuid.UUID
) -> None:
    healthy = False
    webhook_receiver.respond = lambda _: 200 if healthy else 503
    await events.publish(events.endpoint_changed(merchant_id, webhook_receiver.url, [SECRET]))
    message = events.payment_completed(merchant_id)
    await events.publish(message)

    await wait_for(lambda: rows.attempts(message.message_id), timeout=20, what="attempt 1")
    pending = await rows.delivery(message.message_id)
    assert pending is not None and pending["status"] == "pending"
    assert pending["attempt_count"] == 1 and pending["next_attempt_at"] is not None
    worker.crash()
    healthy = True
    worker.start()

    delivered = await wait_for(
        lambda: rows.delivery_in(message.message_id, "succeeded", "dead"),
        timeout=30,
        what="delivery by the restarted dispatcher",
    )
    assert delivered["status"] == "succeeded"
    assert delivered["attempt_count"] == 2, "the schedule resumed; it did not start over"
    assert [a["status_code"] for a in await rows.attempts(message.message_id)] == [503, 200]
    assert len(webhook_receiver.verified_events(SECRET)) == 2


async def test_both_secrets_verify_during_a_rotation_overlap(
    worker, events, rows, webhook_receiver, merchant_id: uuid.UUID
) -> None:
    rotation = events.endpoint_changed(
        merchant_id,
        webhook_receiver.url,
        [SECRET, OLD_SECRET],
        overlap_until=utcnow() + timedelta(hours=1),
    )
    await events.publish(rotation)
    message = events.payment_completed(merchant_id)
    await events.publish(message)

    await wait_for(
        lambda: rows.delivery_in(message.message_id, "succeeded"), timeout=20, what="delivery"
    )
    [received] = webhook_receiver.snapshot()
    header = received.headers[signing.SIGNATURE_HEADER]
    _, signatures = signing.parse_header(header)
    assert len(signatures) == 2
    assert signing.verify(SECRET, header, received.body)
    assert signing.verify(OLD_SECRET, header, received.body)
    assert not signing.verify("whsec_someone_else", header, received.body)


async def test_old_secret_stops_signing_when_the_overlap_is_over(
    worker, events, rows, webhook_receiver, merchant_id: uuid.UUID
) -> None:
    rotated = events.endpoint_changed(
        merchant_id,
        webhook_receiver.url,
        [SECRET, OLD_SECRET],
        overlap_until=utcnow() - timedelta(hours=1),
    )
    await events.publish(rotated)
    message = events.payment_completed(merchant_id)
    await events.publish(message)

    await wait_for(
        lambda: rows.delivery_in(message.message_id, "succeeded"), timeout=20, what="delivery"
    )
    [received] = webhook_receiver.snapshot()
    header = received.headers[signing.SIGNATURE_HEADER]
    assert signing.verify(SECRET, header, received.body)
    assert not signing.verify(OLD_SECRET, header, received.body)


async def test_every_secret_inside_its_own_overlap_signs_after_two_rotations(
    worker, events, rows, webhook_receiver, merchant_id: uuid.UUID
) -> None:
    now = utcnow()
    twice = events.endpoint_changed(
        merchant_id,
        webhook_receiver.url,
        ["whsec_third", SECRET, OLD_SECRET],
        environment="test",
        expiries=[None, now + timedelta(hours=24), now + timedelta(hours=23)],
    )
    await events.publish(twice)
    message = events.payment_completed(merchant_id)
    await events.publish(message)

    await wait_for(
        lambda: rows.delivery_in(message.message_id, "succeeded"), timeout=20, what="delivery"
    )
    [received] = webhook_receiver.snapshot()
    header = received.headers[signing.SIGNATURE_HEADER]
    assert len(signing.parse_header(header)[1]) == 3
    for secret in ("whsec_third", SECRET, OLD_SECRET):
        assert signing.verify(secret, header, received.body), secret


async def test_a_live_endpoint_change_leaves_the_test_endpoint_and_its_secret_alone(
    worker, events, rows, webhook_receiver, merchant_id: uuid.UUID
) -> None:
    from tests.support.receiver import WebhookReceiver  # importable: conftest ensured it

    live_receiver = WebhookReceiver().start()
    try:
        await events.publish(
            events.endpoint_changed(merchant_id, webhook_receiver.url, [SECRET], environment="test")
        )
        await wait_for(lambda: rows.endpoint(merchant_id, "test"), what="the test endpoint")
        await events.publish(
            events.endpoint_changed(
                merchant_id, live_receiver.url, ["whsec_live"], environment="live"
            )
        )
        await wait_for(lambda: rows.endpoint(merchant_id, "live"), what="the live endpoint")
        test_event = events.payment_completed(merchant_id, "test")
        live_event = events.payment_completed(merchant_id, "live")
        for message in (test_event, live_event):
            await events.publish(message)
        for message in (test_event, live_event):
            await wait_for(
                lambda m=message: rows.delivery_in(m.message_id, "succeeded"), what="delivery"
            )
        [(to_test, _)] = webhook_receiver.verified_events(SECRET)
        [(to_live, _)] = live_receiver.verified_events("whsec_live")
        assert to_test["id"] == str(test_event.message_id)
        assert to_live["id"] == str(live_event.message_id)
        assert live_receiver.verified_events(SECRET) == []
    finally:
        live_receiver.stop()


async def test_sigterm_mid_send_hands_the_delivery_back_for_the_next_dispatcher(
    worker, events, rows, webhook_receiver, merchant_id: uuid.UUID
) -> None:
    def slow_ok(_: object) -> int:
        time.sleep(0.9)  # within the 1 s budget: the send is in flight when SIGTERM lands
        return 200

    webhook_receiver.respond = slow_ok
    await events.publish(events.endpoint_changed(merchant_id, webhook_receiver.url, [SECRET]))
    message = events.payment_completed(merchant_id)
    await events.publish(message)
    await wait_for(
        lambda: _has_requests(webhook_receiver), timeout=20, what="the send to be in flight"
    )
    assert worker.stop() == 0, "SIGTERM stops the dispatcher cleanly"
    handed_back = await rows.delivery(message.message_id)
    assert handed_back["status"] == "pending" and handed_back["attempt_count"] == 0
    assert handed_back["locked_until"] is None, "no lease left to wait out"

    webhook_receiver.respond = lambda _: 200
    worker.start()
    delivered = await wait_for(
        lambda: rows.delivery_in(message.message_id, "succeeded"), timeout=30, what="delivery"
    )
    assert delivered["attempt_count"] == 1
    assert {e["id"] for e, _ in webhook_receiver.verified_events(SECRET)} == {
        str(message.message_id)
    }


async def _has_requests(receiver) -> bool:
    return bool(receiver.snapshot())
