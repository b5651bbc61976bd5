"""Payment links through the running stack: a merchant creates them, anyone reads a
link's public state, payers pay through the hosted checkout page, each payment is an
ordinary one (events, webhooks, the link in its metadata), and a link's uses are counted
once per completed payment, even with payers racing on a single-use link."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fluxpay_testing.infra import wait_for

from tests.e2e.conftest import Merchant
from tests.e2e.test_api_keys import client_for, new_key
from tests.e2e.test_audit_log import default_key_id, entries
from tests.e2e.test_collect_api import fetch, reach, webhook
from tests.support.receiver import WebhookReceiver
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


async def create_link(merchant: Merchant, **body: Any) -> dict[str, Any]:
    fields = {"currency": "XOF", "country": "BJ", "description": "Cotisation", **body}
    response = await merchant.client.post("/payment_links", json=fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def public_state(stack: Stack, slug: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=15) as anyone:
        response = await anyone.get(f"/api/v1/links/{slug}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def start_paying(stack: Stack, slug: str, amount: int | None = None) -> httpx.Response:
    """A payer submits the link's page: a hosted payment, then its checkout page."""
    form = {"amount": str(amount)} if amount is not None else None
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as payer:
        return await payer.post(f"/pay/{slug}", data=form)


def payment_id_of(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    return answer.headers["location"].rsplit("/", 1)[-1]


async def pay_on_checkout(stack: Stack, payment_id: str, phone: str) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as payer:
        state = (await payer.get(f"/checkout/{payment_id}/state")).json()
        assert state["merchant_name"] == "E2E shop"
        chosen = await payer.post(
            f"/checkout/{payment_id}/select", json={"operator": "mtn", "phone": phone}
        )
        assert chosen.status_code == 200, chosen.text


async def link_of(merchant: Merchant, link_id: str) -> dict[str, Any]:
    response = await merchant.client.get(f"/payment_links/{link_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def usage_reaches(merchant: Merchant, link_id: str, count: int) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        found = await link_of(merchant, link_id)
        return found if found["usage_count"] == count else None

    return await wait_for(probe, timeout=30, what=f"link {link_id} used {count} times")


async def test_a_payer_pays_a_reusable_link_as_an_ordinary_payment(
    stack: Stack, merchant_factory, receiver: WebhookReceiver
) -> None:
    merchant = merchant_factory(receiver.url)
    link = await create_link(merchant, amount=2500)
    assert link["url"].endswith(f"/pay/{link['slug']}") and link["can_pay"]
    shown = await public_state(stack, link["slug"])
    assert shown["merchant_name"] == "E2E shop" and shown["amount"] == 2500
    assert shown["can_pay"] and not shown["is_expired"] and not shown["usage_limit_reached"]
    async with httpx.AsyncClient(timeout=15) as browser:
        page = await browser.get(link["url"])
    assert page.status_code == 200 and "E2E shop" in page.text and "2 500 XOF" in page.text

    for n in (1, 2):
        payment_id = payment_id_of(await start_paying(stack, link["slug"]))
        await pay_on_checkout(stack, payment_id, "+22997000001")
        paid = await reach(merchant, payment_id, "completed")
        assert paid["amount"] == 2500 and paid["mode"] == "hosted"
        assert paid["metadata"]["payment_link_id"] == link["id"]
        await usage_reaches(merchant, link["id"], n)
    event = await webhook(receiver, merchant, payment_id, "collect.payment.completed")
    assert event["data"]["object"]["metadata"]["payment_link_id"] == link["id"]
    assert (await public_state(stack, link["slug"]))["can_pay"]


async def test_concurrent_payers_of_a_single_use_link_pay_it_once(
    stack: Stack, merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    link = await create_link(merchant, amount=1000, usage_limit=1)
    answers = await asyncio.gather(*(start_paying(stack, link["slug"]) for _ in range(6)))
    started = [a for a in answers if a.status_code == 303]
    assert len(started) == 1, [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in answers if a.status_code != 303} == {
        "payment_link_in_use"
    }
    winner = payment_id_of(started[0])
    await pay_on_checkout(stack, winner, "+22997000001")
    await reach(merchant, winner, "completed")
    used = await usage_reaches(merchant, link["id"], 1)
    assert used["usage_limit_reached"] and not used["can_pay"]
    late = await start_paying(stack, link["slug"])
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "payment_link_usage_limit_reached"
    shown = await public_state(stack, link["slug"])
    assert shown["usage_limit_reached"] and not shown["can_pay"]
    listed = await merchant.client.get(
        "/collect/payments", params={"reference_prefix": f"link-{link['slug']}-"}
    )
    assert [p["id"] for p in listed.json()["data"]] == [winner]


async def test_a_failed_payment_gives_a_single_use_link_back(
    stack: Stack, merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    link = await create_link(merchant, amount=1000, usage_limit=1)
    refused = payment_id_of(await start_paying(stack, link["slug"]))
    busy = await start_paying(stack, link["slug"])
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "payment_link_in_use"
    await pay_on_checkout(stack, refused, "+22997000002")
    await reach(merchant, refused, "failed")

    async def free_again() -> httpx.Response | None:
        answer = await start_paying(stack, link["slug"])
        return answer if answer.status_code == 303 else None

    second = payment_id_of(await wait_for(free_again, timeout=30, what="the use given back"))
    await pay_on_checkout(stack, second, "+22997000001")
    await reach(merchant, second, "completed")
    used = await usage_reaches(merchant, link["id"], 1)
    assert used["usage_limit_reached"]
    assert (await fetch(merchant, refused))["status"] == "failed"


async def test_the_payer_chooses_an_amount_within_the_links_bounds(
    stack: Stack, merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    link = await create_link(merchant, min_amount=500, max_amount=5000)
    shown = await public_state(stack, link["slug"])
    assert (shown["amount"], shown["min_amount"], shown["max_amount"]) == (None, 500, 5000)
    for wrong in (499, 5001):
        refused = await start_paying(stack, link["slug"], wrong)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == "amount"
    missing = await start_paying(stack, link["slug"])
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "parameter_missing"
    payment_id = payment_id_of(await start_paying(stack, link["slug"], 1234))
    assert (await fetch(merchant, payment_id))["amount"] == 1234


async def test_bad_links_are_refused_and_none_is_stored(merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for body, param in (
        ({"amount": 1000, "min_amount": 500}, "min_amount"),
        ({"min_amount": 5000, "max_amount": 500}, "max_amount"),
        ({"amount": 1000, "currency": "RWF"}, "currency"),
        ({"amount": 1000, "expires_at": past}, "expires_at"),
        ({"amount": 1000, "usage_limit": 0}, "usage_limit"),
        ({"amount": "1000"}, "amount"),
    ):
        fields = {"currency": "XOF", "country": "BJ", **body}
        response = await merchant.client.post("/payment_links", json=fields)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["param"] == param
    assert (await merchant.client.get("/payment_links")).json()["data"] == []


async def test_an_expired_link_cannot_be_paid(stack: Stack, merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    link = await create_link(merchant, amount=1000, expires_at=soon)

    async def expired() -> dict[str, Any] | None:
        shown = await public_state(stack, link["slug"])
        return shown if shown["is_expired"] else None

    shown = await wait_for(expired, timeout=30, what="the link's expiry")
    assert not shown["can_pay"]
    refused = await start_paying(stack, link["slug"])
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "payment_link_expired"


async def test_deactivation_is_immediate_and_audited_with_its_actor(
    stack: Stack, merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    actor = await default_key_id(merchant)
    link = await create_link(merchant, amount=1000)
    gone = await merchant.client.delete(f"/payment_links/{link['id']}")
    assert gone.status_code == 200 and gone.json()["active"] is False
    refused = await start_paying(stack, link["slug"])
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "payment_link_inactive"
    assert not (await public_state(stack, link["slug"]))["can_pay"]
    logged = [e for e in await entries(merchant) if e["action"].startswith("payment_link.")]
    assert [e["action"] for e in logged] == ["payment_link.deactivated", "payment_link.created"]
    assert all(e["actor"] == {"type": "api_key", "api_key_id": actor} for e in logged)
    assert {e["details"]["payment_link_id"] for e in logged} == {link["id"]}


async def test_links_are_the_merchants_own_and_read_only_keys_only_read_them(
    stack: Stack, merchant_factory, receiver
) -> None:
    merchant, other = merchant_factory(receiver.url), merchant_factory(receiver.url)
    link = await create_link(merchant, amount=1000)
    assert (await other.client.get(f"/payment_links/{link['id']}")).status_code == 404
    assert (await other.client.delete(f"/payment_links/{link['id']}")).status_code == 404
    async with client_for(stack, merchant.live_key) as live:
        assert (await live.get(f"/api/v1/payment_links/{link['id']}")).status_code == 404
    read_only = await new_key(merchant, role="read_only")
    async with client_for(stack, read_only["secret"]) as client:
        assert (await client.get(f"/api/v1/payment_links/{link['id']}")).status_code == 200
        listed = (await client.get("/api/v1/payment_links")).json()["data"]
        assert [found["id"] for found in listed] == [link["id"]]
        for method, path in (
            ("post", "/api/v1/payment_links"),
            ("delete", f"/api/v1/payment_links/{link['id']}"),
        ):
            refused = await client.request(method, path, json={"amount": 1000})
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "insufficient_permissions"
    assert (await link_of(merchant, link["id"]))["active"] is True
    unknown = await public_state_status(stack, "no-such-link")
    assert unknown == 404


async def public_state_status(stack: Stack, slug: str) -> int:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=15) as anyone:
        return (await anyone.get(f"/api/v1/links/{slug}")).status_code
