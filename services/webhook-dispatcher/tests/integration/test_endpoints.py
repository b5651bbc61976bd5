"""Endpoint lifecycle against the real dispatcher: race, 410, SSRF, isolation, dedup."""

from __future__ import annotations

import threading
import time
import uuid

from fluxpay_testing.infra import wait_for

SECRET = "whsec_integration_endpoint"


async def test_event_before_its_endpoint_is_delivered_when_the_endpoint_arrives(
    worker, events, rows, webhook_receiver, merchant_id: uuid.UUID
) -> None:
    message = events.payment_completed(merchant_id)
    await events.publish(message)
    waiting = await wait_for(
        lambda: rows.delivery(message.message_id), timeout=20, what="the waiting delivery"
    )
    assert waiting["status"] == "pending" and waiting["attempt_count"] == 0

    published_at = time.monotonic()
    await events.publish(events.endpoint_changed(merchant_id, webhook_receiver.url, [SECRET]))
    delivered = await wait_for(
        lambda: rows.delivery_in(message.message_id, "succeeded"), timeout=20, what="delivery"
    )
    assert delivered["attempt_count"] == 1, "waiting for the endpoint is not an attempt"
    [(event, received)] = webhook_receiver.verified_events(SECRET)
    assert event["id"] == str(message.message_id)
    assert received.at - published_at < 4, "the endpoint's arrival wakes the delivery"


async def test_gone_disables_the_endpoint_until_the_merchant_configures_it_again(
    worker, events, rows, webhook_receiver, merchant_id: uuid.UUID
) -> None:
    webhook_receiver.respond = lambda _: 410
    await events.publish(events.endpoint_changed(merchant_id, webhook_receiver.url, [SECRET]))
    first = events.payment_completed(merchant_id)
    await events.publish(first)
    dead = await wait_for(lambda: rows.delivery_in(first.message_id, "dead"), what="dead")
    assert dead["attempt_count"] == 1 and dead["last_status_code"] == 410
    endpoint = await rows.endpoint(merchant_id)
    assert endpoint["disabled_at"] is not None and "410 Gone" in endpoint["disabled_reason"]

    second = events.payment_completed(merchant_id)
    await events.publish(second)
    skipped = await wait_for(lambda: rows.delivery(second.message_id), what="second delivery")
    assert skipped["status"] == "endpoint_disabled" and skipped["attempt_count"] == 0

    webhook_receiver.respond = lambda _: 200
    await events.publish(events.endpoint_changed(merchant_id, webhook_receiver.url, [SECRET]))
    await wait_for(lambda: rows.endpoint_enabled(merchant_id), what="the endpoint enabled again")
    third = events.payment_completed(merchant_id)
    await events.publish(third)
    await wait_for(lambda: rows.delivery_in(third.message_id, "succeeded"), what="delivery")
    assert [r.headers["X-FluxPay-Event-Id"] for r in webhook_receiver.snapshot()] == [
        str(first.message_id),
        str(third.message_id),
    ]


async def test_merchant_without_a_webhook_url_gets_no_delivery_but_keeps_the_event(
    worker, events, rows, merchant_id: uuid.UUID
) -> None:
    await events.publish(events.endpoint_changed(merchant_id, None, [SECRET]))
    await wait_for(lambda: rows.endpoint(merchant_id), what="the endpoint record")
    message = events.payment_completed(merchant_id)
    await events.publish(message)
    skipped = await wait_for(lambda: rows.delivery(message.message_id), what="the delivery row")
    assert skipped["status"] == "no_endpoint" and skipped["attempt_count"] == 0
    assert await rows.event_body(message.message_id) is not None


async def test_redelivered_event_is_stored_and_sent_once(
    worker, events, rows, webhook_receiver, merchant_id: uuid.UUID
) -> None:
    await events.publish(events.endpoint_changed(merchant_id, webhook_receiver.url, [SECRET]))
    message = events.payment_completed(merchant_id)
    sentinel = events.payment_completed(merchant_id)
    for published in (message, message, sentinel):
        await events.publish(published)
    await wait_for(lambda: rows.delivery_in(sentinel.message_id, "succeeded"), what="sentinel")
    await wait_for(lambda: rows.delivery_in(message.message_id, "succeeded"), what="delivery")
    assert await rows.delivery_count(message.message_id) == 1
    ids = [r.headers["X-FluxPay-Event-Id"] for r in webhook_receiver.snapshot()]
    assert sorted(ids) == sorted([str(message.message_id), str(sentinel.message_id)])


async def test_a_slow_merchant_neither_exceeds_its_limit_nor_delays_another(
    worker, events, rows, webhook_receiver, merchant_id: uuid.UUID
) -> None:
    from tests.support.receiver import WebhookReceiver  # importable: conftest ensured it

    gauge = _ConcurrencyGauge()
    webhook_receiver.respond = gauge.slow_ok
    other_merchant = uuid.uuid4()
    other_receiver = WebhookReceiver().start()
    try:
        await events.publish(events.endpoint_changed(merchant_id, webhook_receiver.url, [SECRET]))
        await events.publish(events.endpoint_changed(other_merchant, other_receiver.url, [SECRET]))
        await wait_for(lambda: rows.endpoint(other_merchant), what="the second endpoint")
        slow = [events.payment_completed(merchant_id) for _ in range(12)]
        for message in slow:
            await events.publish(message)
        quick = events.payment_completed(other_merchant)
        await events.publish(quick)

        await wait_for(lambda: rows.delivery_in(quick.message_id, "succeeded"), what="quick")
        pending_slow = [
            m for m in slow if await rows.delivery_in(m.message_id, "succeeded") is None
        ]
        assert pending_slow, "the other merchant was served while the slow one was busy"
        for message in slow:
            await wait_for(
                lambda m=message: rows.delivery_in(m.message_id, "succeeded"),
                timeout=30,
                what="slow deliveries",
            )
        assert gauge.peak == 4, "four in flight to one merchant, never more"
    finally:
        other_receiver.stop()


class _ConcurrencyGauge:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def slow_ok(self, _: object) -> int:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
        time.sleep(0.6)
        with self._lock:
            self.current -= 1
        return 200
