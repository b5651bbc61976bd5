"""Merchant-facing webhook features through the running stack: retries on failure, events
and their attempts, replay, test events, endpoint change and secret rotation."""

from __future__ import annotations

import httpx
import pytest
from fluxpay_testing.infra import wait_for

from fluxpay_common import signing
from tests.e2e.test_collect_api import create, webhook
from tests.support.receiver import Received, WebhookReceiver

pytestmark = pytest.mark.e2e


async def test_failed_deliveries_are_retried_with_the_same_event_id(merchant_factory) -> None:
    answered: list[int] = []

    def flaky(_: Received) -> int:
        answered.append(500 if len(answered) < 2 else 200)
        return answered[-1]

    receiver = WebhookReceiver(respond=flaky).start()
    try:
        merchant = merchant_factory(receiver.url)
        payment = await create(merchant, "+22997000002")
        await webhook(receiver, merchant, payment["id"], "collect.payment.failed")
        received = receiver.verified_events(merchant.webhook_secret)
        refused_ids = [str(e["id"]) for e, _ in received[:2]]

        async def redelivered() -> bool:
            later = [str(e["id"]) for e, _ in receiver.verified_events(merchant.webhook_secret)[2:]]
            return all(event_id in later for event_id in refused_ids)

        await wait_for(redelivered, timeout=30, what="the refused events delivered again")
        detail = (await merchant.client.get(f"/events/{refused_ids[0]}")).json()
        codes = [a["status_code"] for d in detail["deliveries"] for a in d["attempts"]]
        assert 500 in codes and 200 in codes, detail
        listed = (await merchant.client.get("/events", params={"limit": 100})).json()
        assert listed["object"] == "list" and refused_ids[0] in {e["id"] for e in listed["data"]}
    finally:
        receiver.stop()


async def test_replay_and_test_event(merchant_factory, receiver: WebhookReceiver) -> None:
    merchant = merchant_factory(receiver.url)
    payment = await create(merchant, "+22997000001")
    completed = await webhook(receiver, merchant, payment["id"], "collect.payment.completed")

    replay = await merchant.client.post(f"/events/{completed['id']}/replay")
    assert replay.status_code == 202, replay.text

    async def twice() -> bool:
        ids = [e["id"] for e, _ in receiver.verified_events(merchant.webhook_secret)]
        return ids.count(completed["id"]) >= 2

    await wait_for(twice, timeout=30, what="the replayed event, same id")

    test = await merchant.client.post(
        f"{merchant.client.base_url.copy_with(path='/api/webhooks/test')}"
    )
    assert test.status_code == 202, test.text

    async def test_event() -> bool:
        return any(
            e.get("test") is True for e, _ in receiver.verified_events(merchant.webhook_secret)
        )

    await wait_for(test_event, timeout=30, what="the signed test event")
    missing = await merchant.client.get("/events/evt_unknown")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "event_not_found"


async def test_rotation_signs_with_both_secrets_during_the_overlap(
    merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    rotated = await merchant.client.post("/webhook_endpoint/rotate_secret")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != merchant.webhook_secret
    payment = await create(merchant, "+22997000001")

    async def signed_by_both() -> Received | None:
        for event, received in receiver.verified_events(new_secret):
            if event["data"]["object"]["id"] == payment["id"]:
                return received
        return None

    received = await wait_for(
        signed_by_both, timeout=30, what="an event signed with the new secret"
    )
    header = received.headers[signing.SIGNATURE_HEADER]
    assert header.count("v1=") == 2
    assert signing.verify(merchant.webhook_secret, header, received.body)
    endpoint = (await merchant.client.get("/webhook_endpoint")).json()
    assert endpoint["url"] == receiver.url and endpoint["status"] == "enabled"


async def test_endpoint_change_and_environment_isolation(stack, merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    other = WebhookReceiver().start()
    try:
        changed = await merchant.client.put("/webhook_endpoint", json={"url": other.url})
        assert changed.status_code == 200, changed.text

        async def moved() -> bool:
            endpoint = (await merchant.client.get("/webhook_endpoint")).json()
            return bool(endpoint.get("url") == other.url)

        await wait_for(moved, timeout=30, what="the dispatcher to learn the new URL")
        payment = await create(merchant, "+22997000001")
        await webhook(other, merchant, payment["id"], "collect.payment.completed")
        bad = await merchant.client.put("/webhook_endpoint", json={"url": "nope"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "url"
        async with httpx.AsyncClient(base_url=f"{stack.base_url}/api/v1") as live:
            events = await live.get("/events", headers={"X-API-Key": merchant.live_key})
            assert events.status_code == 200 and events.json()["data"] == []
    finally:
        other.stop()


def _live_client(stack, merchant) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{stack.base_url}/api/v1",
        headers={"Authorization": f"Bearer {merchant.live_key}"},
        timeout=15,
    )


async def _send_test_event(client: httpx.AsyncClient) -> str:
    sent = await client.post(f"{client.base_url.copy_with(path='/api/webhooks/test')}")
    assert sent.status_code == 202, sent.text
    return str(sent.json()["id"])


async def test_a_test_key_never_reads_nor_changes_the_live_endpoint_or_secret(
    stack, merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    other = WebhookReceiver().start()
    try:
        moved = await merchant.client.put("/webhook_endpoint", json={"url": other.url})
        assert moved.status_code == 200 and moved.json()["environment"] == "test", moved.text
        rotated = await merchant.client.post("/webhook_endpoint/rotate_secret")
        assert rotated.status_code == 200, rotated.text
        new_test_secret = rotated.json()["secret"]

        async def test_endpoint_moved() -> bool:
            shown = (await merchant.client.get("/webhook_endpoint")).json()
            return bool(shown.get("url") == other.url)

        await wait_for(test_endpoint_moved, timeout=30, what="the test endpoint to move")
        async with _live_client(stack, merchant) as live:
            shown = (await live.get("/webhook_endpoint")).json()
            assert shown["url"] == receiver.url and shown["environment"] == "live", shown
            assert shown["secret_rotation_overlap_until"] is None, "no rotation in live"
            event_id = await _send_test_event(live)

        async def arrived() -> Received | None:
            found = [r for r in receiver.snapshot() if event_id.encode() in r.body]
            return found[0] if found else None

        received = await wait_for(arrived, timeout=30, what="the live test event")
        header = received.headers[signing.SIGNATURE_HEADER]
        assert signing.verify(merchant.webhook_secrets["live"], header, received.body)
        for test_secret in (merchant.webhook_secrets["test"], new_test_secret):
            assert not signing.verify(test_secret, header, received.body)
        assert not [r for r in other.snapshot() if event_id.encode() in r.body]
    finally:
        other.stop()


async def test_two_rotations_keep_the_original_secret_signing_within_its_overlap(
    merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    secrets = [merchant.webhook_secret]
    for _ in range(2):
        rotated = await merchant.client.post("/webhook_endpoint/rotate_secret")
        assert rotated.status_code == 200, rotated.text
        secrets.append(rotated.json()["secret"])
    payment = await create(merchant, "+22997000001")

    async def signed_by_the_newest() -> Received | None:
        for event, received in receiver.verified_events(secrets[-1]):
            if event["data"]["object"]["id"] == payment["id"]:
                return received
        return None

    received = await wait_for(signed_by_the_newest, timeout=30, what="the newest signature")
    header = received.headers[signing.SIGNATURE_HEADER]
    assert header.count("v1=") == 3
    for secret in secrets:
        assert signing.verify(secret, header, received.body), "every secret inside its overlap"
