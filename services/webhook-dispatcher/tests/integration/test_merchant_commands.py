"""Merchant commands over request/reply, as the gateway sends them, to the real process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fluxpay_testing.infra import Infra, wait_for

from fluxpay_common.ids import utcnow
from fluxpay_common.messages import Environment, QueryReply, WebhooksCommand
from fluxpay_common.rpc import RpcClient
from fluxpay_common.topology import COMMANDS, WEBHOOK_COMMANDS_KEY

SECRET = "whsec_integration_commands"


class Merchant:
    """One merchant's API key environment, asking the dispatcher as the gateway does."""

    def __init__(
        self, rpc: RpcClient, merchant_id: uuid.UUID, environment: Environment = "test"
    ) -> None:
        self._rpc = rpc
        self.id = merchant_id
        self.environment: Environment = environment

    def in_env(self, environment: Environment) -> Merchant:
        return Merchant(self._rpc, self.id, environment)

    async def ask(self, kind: str, **fields: Any) -> QueryReply:
        command = WebhooksCommand(
            type=kind,  # type: ignore[arg-type]
            merchant_id=self.id,
            environment=self.environment,
            correlation_id=f"it-{uuid.uuid4()}",
            **fields,
        )
        reply: QueryReply = await self._rpc.call(command, QueryReply, timeout=15)
        return reply

    async def data(self, kind: str, **fields: Any) -> Any:
        reply = await self.ask(kind, **fields)
        assert reply.error is None, reply.error
        return reply.data

    async def event_ids(self, **fields: Any) -> list[str]:
        page = await self.data("webhooks.list_events", **fields)
        return [e["id"] for e in page["data"]]

    async def delivery_status(self, event_id: object) -> str | None:
        reply = await self.ask("webhooks.get_event", event_id=str(event_id))
        return reply.data["delivery"]["status"] if reply.data else None

    async def status_is(self, event_id: object, status: str) -> bool:
        return await self.delivery_status(event_id) == status


@pytest.fixture(scope="module")
async def rpc(infra: Infra) -> AsyncIterator[RpcClient]:
    client = RpcClient(infra.rabbitmq_url, COMMANDS.name, WEBHOOK_COMMANDS_KEY)
    await client.start()
    yield client
    await client.stop()


@pytest.fixture
def merchant(rpc: RpcClient, merchant_id: uuid.UUID) -> Merchant:
    return Merchant(rpc, merchant_id)


async def _configure(events, rows, merchant: Merchant, url: str | None) -> None:
    await events.publish(events.endpoint_changed(merchant.id, url, [SECRET]))
    await wait_for(lambda: rows.endpoint(merchant.id), what="the endpoint record")


async def test_event_list_is_newest_first_with_delivery_state_and_paginates(
    worker, events, rows, webhook_receiver, merchant: Merchant
) -> None:
    await _configure(events, rows, merchant, webhook_receiver.url)
    published = [events.payment_completed(merchant.id) for _ in range(3)]
    for message in published:
        await events.publish(message)
        await wait_for(lambda m=message: merchant.status_is(m.message_id, "delivered"))
    newest_first = [str(m.message_id) for m in reversed(published)]

    first = await merchant.data("webhooks.list_events", limit=2)
    assert [e["id"] for e in first["data"]] == newest_first[:2] and first["has_more"] is True
    rest = await merchant.data("webhooks.list_events", limit=2, starting_after=newest_first[1])
    assert [e["id"] for e in rest["data"]] == newest_first[2:] and rest["has_more"] is False
    summary = first["data"][0]
    assert summary["object"] == "event" and summary["type"] == "collect.payment.completed"
    assert summary["environment"] == "test"
    assert summary["created"] == int(published[-1].occurred_at.timestamp())
    delivery = summary["delivery"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    assert delivery["last_status_code"] == 200 and delivery["next_attempt_at"] is None


async def test_event_type_filter_and_an_unknown_cursor(
    worker, events, rows, merchant: Merchant
) -> None:
    await _configure(events, rows, merchant, None)
    completed = events.payment_completed(merchant.id)
    failed = events.payment_completed(merchant.id).model_copy(
        update={"type": "collect.payment.failed"}
    )
    for message in (completed, failed):
        await events.publish(message)
        await wait_for(lambda m=message: rows.delivery(m.message_id), what="the event")

    assert await merchant.event_ids(event_type="collect.payment.failed") == [str(failed.message_id)]
    reply = await merchant.ask("webhooks.list_events", starting_after=str(uuid.uuid4()))
    assert reply.error is not None and reply.error.status == 400
    assert reply.error.code == "invalid_starting_after" and reply.error.param == "starting_after"


async def test_get_event_is_the_sent_body_with_every_attempt(
    worker, events, rows, webhook_receiver, merchant: Merchant
) -> None:
    answers = iter([500])
    webhook_receiver.respond = lambda _: next(answers, 200)
    await _configure(events, rows, merchant, webhook_receiver.url)
    message = events.payment_completed(merchant.id)
    await events.publish(message)
    await wait_for(lambda: merchant.status_is(message.message_id, "delivered"), timeout=30)

    event = await merchant.data("webhooks.get_event", event_id=str(message.message_id))
    [(sent, _), _] = webhook_receiver.verified_events(SECRET)
    body = {k: v for k, v in event.items() if k not in ("delivery", "deliveries")}
    assert body == sent, "the event as the merchant's server received it"
    [delivery] = event["deliveries"]
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 200]
    assert all(a["duration_ms"] >= 0 and a["at"] for a in delivery["attempts"])
    assert delivery["attempts"][0]["url"] == webhook_receiver.url

    unknown = await merchant.ask("webhooks.get_event", event_id=str(uuid.uuid4()))
    assert unknown.error is not None and unknown.error.status == 404
    assert (unknown.error.code, unknown.error.param) == ("event_not_found", "event_id")


async def test_replay_sends_the_same_bytes_under_the_same_event_id(
    worker, events, rows, webhook_receiver, merchant: Merchant
) -> None:
    await _configure(events, rows, merchant, webhook_receiver.url)
    message = events.payment_completed(merchant.id)
    await events.publish(message)
    await wait_for(lambda: merchant.status_is(message.message_id, "delivered"))

    answer = await merchant.data("webhooks.replay_event", event_id=str(message.message_id))
    assert answer["object"] == "event_replay" and answer["status"] == "pending"
    assert answer["event_id"] == str(message.message_id)
    await wait_for(lambda: _received_count(webhook_receiver, 2), what="the replayed send")
    first, again = webhook_receiver.snapshot()
    assert again.body == first.body
    assert again.headers["X-FluxPay-Event-Id"] == str(message.message_id)
    assert len(webhook_receiver.verified_events(SECRET)) == 2

    async def both_delivered() -> list[dict[str, Any]] | None:
        event = await merchant.data("webhooks.get_event", event_id=str(message.message_id))
        done = all(d["status"] == "delivered" for d in event["deliveries"])
        return event["deliveries"] if done else None

    deliveries = await wait_for(both_delivered, what="the replay recorded")
    assert deliveries[0]["id"] == answer["delivery_id"], "the newest first"
    assert len(deliveries) == 2


async def _received_count(receiver, n: int) -> bool:
    return len(receiver.snapshot()) >= n


async def test_disabled_endpoint_refuses_replays_until_the_merchant_sets_its_url_again(
    worker, events, rows, webhook_receiver, merchant: Merchant
) -> None:
    started = utcnow()
    webhook_receiver.respond = lambda _: 410
    await _configure(events, rows, merchant, webhook_receiver.url)
    # Before `since`: only an explicit replay brings it back.
    old = events.payment_completed(merchant.id).model_copy(
        update={"occurred_at": started - timedelta(days=1)}
    )
    await events.publish(old)
    await wait_for(lambda: merchant.status_is(old.message_id, "dead"), what="410: dead")
    recent = events.payment_completed(merchant.id)
    await events.publish(recent)
    await wait_for(lambda: merchant.status_is(recent.message_id, "failed"), what="not sent")

    endpoint = await merchant.data("webhooks.get_endpoint")
    assert endpoint["status"] == "disabled" and "410 Gone" in endpoint["disabled_reason"]
    for kind, fields in (
        ("webhooks.replay_event", {"event_id": str(recent.message_id)}),
        ("webhooks.replay_failed", {"since": started}),
    ):
        refused = await merchant.ask(kind, **fields)
        assert refused.error is not None and refused.error.status == 409, kind
        assert refused.error.code == "endpoint_disabled"

    webhook_receiver.respond = lambda _: 200
    await events.publish(events.endpoint_changed(merchant.id, webhook_receiver.url, [SECRET]))
    await wait_for(lambda: rows.endpoint_enabled(merchant.id), what="re-enabled")
    assert (await merchant.data("webhooks.get_endpoint"))["status"] == "enabled"
    replayed = await merchant.data("webhooks.replay_failed", since=started)
    assert replayed == {"object": "event_replay", "replayed": 1}
    await wait_for(lambda: merchant.status_is(recent.message_id, "delivered"))
    assert await merchant.delivery_status(old.message_id) == "dead", "older than `since`"
    again = await merchant.data("webhooks.replay_failed", since=started)
    assert again["replayed"] == 0, "nothing failed any more"

    await merchant.data("webhooks.replay_event", event_id=str(old.message_id))
    await wait_for(lambda: merchant.status_is(old.message_id, "delivered"))
    sent = [e["id"] for e, _ in webhook_receiver.verified_events(SECRET)]
    assert sent == [str(old.message_id), str(recent.message_id), str(old.message_id)]


async def test_send_test_delivers_a_signed_event_marked_test(
    worker, events, rows, webhook_receiver, merchant: Merchant
) -> None:
    await _configure(events, rows, merchant, webhook_receiver.url)
    answer = await merchant.data("webhooks.send_test")
    assert answer["object"] == "event" and answer["test"] is True
    assert answer["type"] == "collect.payment.completed"
    assert answer["delivery"]["status"] == "pending"

    await wait_for(lambda: merchant.status_is(answer["id"], "delivered"), what="test delivered")
    [(sent, received)] = webhook_receiver.verified_events(SECRET)
    assert sent["id"] == answer["id"] and sent["test"] is True
    assert sent["data"]["object"]["id"] == str(uuid.UUID(int=0))
    assert sent["data"]["object"]["reference"] == "test_webhook"
    assert received.headers["X-FluxPay-Event-Id"] == answer["id"]
    [listed] = (await merchant.data("webhooks.list_events"))["data"]
    assert listed["id"] == answer["id"] and listed["test"] is True
    assert await merchant.in_env("live").event_ids() == [], "a test-env event is not live"


async def test_send_test_without_an_endpoint_is_refused(
    worker, events, rows, merchant: Merchant
) -> None:
    unknown = await merchant.ask("webhooks.send_test")
    assert unknown.error is not None and unknown.error.code == "webhook_endpoint_not_found"
    await _configure(events, rows, merchant, None)
    no_url = await merchant.ask("webhooks.send_test")
    assert no_url.error is not None and no_url.error.status == 404
    assert await merchant.event_ids() == [], "a refused test event is not stored"


async def test_get_endpoint_shows_url_status_and_rotation_overlap(
    worker, events, rows, merchant: Merchant
) -> None:
    missing = await merchant.ask("webhooks.get_endpoint")
    assert missing.error is not None and missing.error.status == 404
    assert missing.error.code == "webhook_endpoint_not_found"

    overlap_until = utcnow() + timedelta(hours=24)
    url = "https://shop.example.com/hooks"
    await events.publish(
        events.endpoint_changed(merchant.id, url, [SECRET, "whsec_old"], overlap_until)
    )
    await wait_for(lambda: rows.endpoint(merchant.id), what="the endpoint record")
    endpoint = await merchant.data("webhooks.get_endpoint")
    shown = datetime.fromisoformat(endpoint.pop("secret_rotation_overlap_until"))
    assert abs(shown - overlap_until) < timedelta(milliseconds=1)
    assert endpoint == {
        "object": "webhook_endpoint",
        "environment": "test",
        "url": url,
        "status": "enabled",
        "disabled_reason": None,
        "disabled_at": None,
        "failing_since": None,
    }, "the state, never a secret"


async def test_each_environment_reads_and_uses_only_its_own_endpoint(
    worker, events, rows, webhook_receiver, merchant: Merchant
) -> None:
    await events.publish(
        events.endpoint_changed(merchant.id, webhook_receiver.url, [SECRET], environment="test")
    )
    await wait_for(lambda: rows.endpoint(merchant.id, "test"), what="the test endpoint")
    live = merchant.in_env("live")
    assert (await merchant.data("webhooks.get_endpoint"))["url"] == webhook_receiver.url
    for kind in ("webhooks.get_endpoint", "webhooks.send_test"):
        reply = await live.ask(kind)
        assert reply.error is not None and reply.error.code == "webhook_endpoint_not_found", kind
    assert await rows.endpoint(merchant.id, "live") is None

    url = "https://shop.example.com/live-hooks"
    await events.publish(
        events.endpoint_changed(merchant.id, url, ["whsec_live"], environment="live")
    )
    await wait_for(lambda: rows.endpoint(merchant.id, "live"), what="the live endpoint")
    assert (await live.data("webhooks.get_endpoint"))["url"] == url
    assert (await merchant.data("webhooks.get_endpoint"))["url"] == webhook_receiver.url


async def test_merchants_and_environments_never_see_each_other(
    worker, events, rows, rpc: RpcClient
) -> None:
    a_test = Merchant(rpc, uuid.uuid4())
    a_live, b_test = a_test.in_env("live"), Merchant(rpc, uuid.uuid4())
    for m in (a_test, b_test):
        await _configure(events, rows, m, None)
    messages = {
        "a_test": events.payment_completed(a_test.id),
        "a_live": events.payment_completed(a_test.id, environment="live"),
        "b_test": events.payment_completed(b_test.id),
    }
    for message in messages.values():
        await events.publish(message)
        await wait_for(lambda m=message: rows.delivery(m.message_id), what="the event")
    ids = {name: str(m.message_id) for name, m in messages.items()}

    assert await a_test.event_ids() == [ids["a_test"]]
    assert await a_live.event_ids() == [ids["a_live"]]
    assert await b_test.event_ids() == [ids["b_test"]]
    assert await b_test.in_env("live").event_ids() == []
    for outsider in (a_live, b_test):
        for kind in ("webhooks.get_event", "webhooks.replay_event"):
            reply = await outsider.ask(kind, event_id=ids["a_test"])
            assert reply.error is not None and reply.error.code == "event_not_found", kind
        cursor = await outsider.ask("webhooks.list_events", starting_after=ids["a_test"])
        assert cursor.error is not None and cursor.error.code == "invalid_starting_after"
    assert await rows.delivery_count(ids["a_test"]) == 1, "no replay slipped through"
    assert await a_test.delivery_status(ids["a_test"]) == "no_endpoint"
