"""Live payments through the whole stack to each real-PSP connector and its simulator.

The PSP simulators and connectors join the running stack as processes (`fluxpay-psp-sim`,
`fluxpay-connector --provider NAME --http-port N`); a merchant's live key is routed by the
orchestrator to the provider, whose simulated customer approves; the payment completes with
the PSP's reference and the ledger books it from the `collect.payment.completed` event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fluxpay_testing.infra import wait_for

from tests.e2e.conftest import Merchant, idempotency
from tests.e2e.test_collect_api import webhook
from tests.support.receiver import WebhookReceiver
from tests.support.stack import Psp, Stack, add_psp

pytestmark = pytest.mark.e2e
PROVIDERS = ("novasend", "mtn_momo", "irembopay", "stripe")


@dataclass(frozen=True)
class Journey:
    provider: str
    country: str
    currency: str
    operator: str
    phone: str


JOURNEYS = {
    "mtn_momo": Journey("mtn_momo", "BJ", "XOF", "mtn", "+22997000001"),
    "novasend": Journey("novasend", "BJ", "XOF", "moov", "+22995000001"),
    "irembopay": Journey("irembopay", "RW", "RWF", "mtn", "+250788000001"),
    "stripe": Journey("stripe", "BJ", "XOF", "card", "+22997000001"),
}


@pytest.fixture(scope="module")
def psp_stack(stack: Stack) -> Iterator[dict[str, Psp]]:
    """Add every PSP simulator and connector to the running stack (stopped with it);
    yields each one's simulator URL and connector callback port."""
    yield {p: add_psp(stack, p) for p in PROVIDERS}


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).is_success
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_live_payment_completes_at_its_psp_with_a_signed_webhook(
    provider: str,
    psp_stack: dict[str, Psp],
    stack: Stack,
    merchant_factory,
    receiver: WebhookReceiver,
    db,
) -> None:
    journey = JOURNEYS[provider]

    async def connector_up() -> bool:
        if dead := [n for n in stack.dead_services() if provider in n]:
            raise AssertionError(f"{dead} exited; logs in {stack.log_dir}")
        return _healthy(psp_stack[provider].callback_port)

    await wait_for(connector_up, timeout=60, what=f"the {provider} connector")
    merchant = merchant_factory(receiver.url, "live")
    body = {
        "reference": f"live-{uuid.uuid4()}",
        "amount": 3000,
        "currency": journey.currency,
        "country": journey.country,
        "mode": "direct",
        "operator": journey.operator,
        "customer": {
            "phone": journey.phone,
            "first_name": "Awa",
            "last_name": "Mensah",
            "email": "awa@example.com",
        },
        "description": f"e2e {provider}",
    }
    response = await merchant.client.post("/collect/payments", json=body, headers=idempotency())
    assert response.status_code == 201, response.text
    payment = response.json()
    assert payment["environment"] == "live"

    async def completed() -> bool:
        got = await merchant.client.get(f"/collect/payments/{payment['id']}")
        return got.status_code == 200 and got.json()["status"] == "completed"

    await wait_for(completed, timeout=60, what=f"the {provider} payment to complete")
    provider_row = await db.fetchrow(
        "SELECT provider, status, psp_reference FROM connectors.provider_attempt"
        " WHERE payment_id = $1::uuid",
        payment["id"],
    )
    assert provider_row["provider"] == provider and provider_row["status"] == "completed"
    assert provider_row["psp_reference"]

    async def booked() -> list[object]:
        return await db.fetch(
            "SELECT e.id, sum(p.amount_minor) AS total FROM ledger.journal_entry e"
            " JOIN ledger.posting p ON p.entry_id = e.id WHERE e.payment_id = $1::uuid"
            " GROUP BY e.id",
            payment["id"],
        )

    entries = await wait_for(booked, timeout=30, what="the ledger entry of the live payment")
    assert len(entries) == 1 and entries[0]["total"] == 0
    # The stack runs with FLUXPAY_WEBHOOK_LIVE_GUARD=false (development) so a live event
    # may reach this http://127.0.0.1 receiver; deployments refuse it (SSRF guard).
    completed_event = await webhook(receiver, merchant, payment["id"], "collect.payment.completed")
    assert completed_event["environment"] == "live"
    # The seed types NextAction.message as a string: never null, even once completed.
    assert isinstance(completed_event["data"]["object"]["next_action"]["message"], str)
    await _customer_reached_the_psp(provider, psp_stack[provider], payment["id"])
    await _refund_reports_its_psp_outcome(provider, merchant, receiver, payment["id"])


async def _refund_reports_its_psp_outcome(
    provider: str, merchant: Merchant, receiver: WebhookReceiver, payment_id: str
) -> None:
    """A refund's PSP reference (or why it failed) reaches the merchant."""
    refunds = f"/collect/payments/{payment_id}/refunds"
    created = await merchant.client.post(refunds, json={"amount": 1000}, headers=idempotency())
    assert created.status_code == 201, created.text
    if provider == "irembopay":  # no refund API: fails clearly, refunded out of band
        event = await webhook(receiver, merchant, payment_id, "collect.refund.failed")
        assert event["data"]["refund"]["failure_code"] == "refund_not_supported"
        return
    event = await webhook(receiver, merchant, payment_id, "collect.refund.completed")
    assert event["data"]["refund"]["psp_reference"]


async def _customer_reached_the_psp(provider: str, psp: Psp, payment_id: str) -> None:
    """The API's first_name/last_name and email are what the PSP received."""
    async with httpx.AsyncClient(base_url=psp.sim_url) as client:
        seen = (await client.get("/_sim/requests", params={"method": "POST"})).json()
    [created] = [r for r in seen if payment_id in r["body"] and "token" not in r["path"]][:1]
    body = created["body"]
    if provider == "novasend":
        assert json.loads(body)["customerName"] == "Awa Mensah"
    if provider == "irembopay":
        customer = json.loads(body)["customer"]
        assert (customer["name"], customer["email"]) == ("Awa Mensah", "awa@example.com")
    if provider == "stripe":
        assert dict(httpx.QueryParams(body))["customer_email"] == "awa@example.com"


async def test_novasend_charged_amount_is_booked_as_what_the_customer_paid(
    psp_stack: dict[str, Psp], stack: Stack, merchant_factory, receiver: WebhookReceiver, db
) -> None:
    merchant = merchant_factory(receiver.url, "live")
    journey = JOURNEYS["novasend"]
    body = {
        "reference": f"live-{uuid.uuid4()}",
        "amount": 3000,
        "currency": journey.currency,
        "country": journey.country,
        "mode": "direct",
        "operator": journey.operator,
        "customer": {"phone": journey.phone, "first_name": "Awa"},
    }
    created = await merchant.client.post("/collect/payments", json=body, headers=idempotency())
    assert created.status_code == 201, created.text
    payment_id = created.json()["id"]

    async def booked() -> list[object]:
        return await db.fetch(
            "SELECT a.kind, p.amount_minor FROM ledger.journal_entry e"
            " JOIN ledger.posting p ON p.entry_id = e.id JOIN ledger.account a"
            " ON a.id = p.account_id WHERE e.payment_id = $1::uuid ORDER BY p.id",
            payment_id,
        )

    postings = await wait_for(booked, timeout=60, what="the ledger entry")
    charged = await db.fetchval(
        "SELECT charged_amount_minor FROM orchestrator.payment WHERE id = $1::uuid", payment_id
    )
    assert charged is not None and charged > 300_000  # amount + the fee the customer paid
    clearing = [p["amount_minor"] for p in postings if p["kind"] == "psp_clearing"]
    recovered = [p["amount_minor"] for p in postings if p["kind"] == "psp_fee_recovered"]
    assert clearing[0] == charged and recovered == [-(charged - 300_000)]
    assert sum(p["amount_minor"] for p in postings) == 0


async def test_live_otp_operator_is_refused_rather_than_awaiting_an_otp_nobody_checks(
    psp_stack: dict[str, Psp], merchant_factory, receiver: WebhookReceiver
) -> None:
    merchant = merchant_factory(receiver.url, "live")
    body = {
        "reference": f"live-{uuid.uuid4()}",
        "amount": 3000,
        "currency": "XOF",
        "country": "BJ",
        "mode": "direct",
        "operator": "coris",
        "customer": {"phone": "+22997000001"},
    }
    response = await merchant.client.post("/collect/payments", json=body, headers=idempotency())
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "operator_unavailable" and error["param"] == "operator"
    assert "OTP" in error["message"]


async def test_card_holder_returning_from_stripe_lands_on_the_payments_page(
    psp_stack: dict[str, Psp], stack: Stack, merchant_factory, receiver: WebhookReceiver
) -> None:
    merchant = merchant_factory(receiver.url, "live")
    body = {
        "reference": f"live-{uuid.uuid4()}",
        "amount": 3000,
        "currency": "XOF",
        "country": "BJ",
        "mode": "direct",
        "operator": "card",
        "customer": {"phone": "+22997000001"},
    }
    created = await merchant.client.post("/collect/payments", json=body, headers=idempotency())
    assert created.status_code == 201, created.text
    payment_id = created.json()["id"]

    async def session_created() -> list[dict[str, str]]:
        async with httpx.AsyncClient(base_url=psp_stack["stripe"].sim_url) as client:
            seen = await client.get("/_sim/requests", params={"path": "/v1/checkout/sessions"})
        forms = [dict(httpx.QueryParams(r["body"])) for r in seen.json()]
        return [f for f in forms if f.get("client_reference_id") == payment_id]

    [form] = await wait_for(session_created, timeout=60, what="the Stripe Checkout Session")
    assert form["success_url"].startswith(f"{stack.base_url}/checkout/{payment_id}")
    async with httpx.AsyncClient() as client:
        back = await client.get(form["success_url"])
        state = await client.get(f"{stack.base_url}/checkout/{payment_id}/state")
    assert back.status_code == 200 and "text/html" in back.headers["content-type"]
    assert state.status_code == 200 and state.json()["id"] == payment_id


def test_operators_list_the_review_queue_with_its_size(psp_stack: dict[str, Psp], stack: Stack):
    # Every connector answers from its own queue (fluxpay-admin asks them over the broker).
    listing = stack.admin("provider-reviews")
    assert isinstance(listing["open_count"], int) and isinstance(listing["items"], list)
    assert set(listing["by_provider"]) == {"sandbox", *PROVIDERS}
    assert listing["unanswered"] == []


async def test_an_operator_resolves_a_review_and_the_payment_completes_for_the_merchant(
    psp_stack: dict[str, Psp],
    stack: Stack,
    merchant_factory,
    receiver: WebhookReceiver,
    db,
) -> None:
    merchant = merchant_factory(receiver.url, "live")
    journey = JOURNEYS["mtn_momo"]
    body = {
        "reference": f"review-{uuid.uuid4()}",
        "amount": 3000,
        "currency": journey.currency,
        "country": journey.country,
        "mode": "direct",
        "operator": journey.operator,
        "customer": {"phone": journey.phone[:-6] + "000003"},  # the customer never answers
    }
    response = await merchant.client.post("/collect/payments", json=body, headers=idempotency())
    assert response.status_code == 201, response.text
    payment_id = response.json()["id"]

    async def attempt_at_mtn() -> bool:
        status = await db.fetchval(
            "SELECT status FROM connectors.provider_attempt WHERE payment_id = $1::uuid",
            payment_id,
        )
        return status == "processing"

    await wait_for(attempt_at_mtn, timeout=60, what="the MTN attempt")
    # Polling gives up a day after expiry: play that moment (no more polls, one review).
    await db.execute(
        "WITH stopped AS (UPDATE connectors.provider_attempt SET next_poll_at = NULL"
        " WHERE payment_id = $1::uuid RETURNING payment_id, provider, merchant_id, status)"
        " INSERT INTO connectors.provider_review"
        " (payment_id, provider, merchant_id, reason, last_status)"
        " SELECT payment_id, provider, merchant_id, 'polling_stopped', status FROM stopped",
        payment_id,
    )
    listing = stack.admin("provider-reviews", "--provider", "mtn_momo")
    assert payment_id in {item["payment_id"] for item in listing["items"]}

    resolve = ("resolve-review", "--provider", "mtn_momo", "--payment-id", payment_id)
    reason = ("--outcome", "paid", "--reason", "MTN statement line 77", "--actor", "ops:e2e")
    done = stack.admin(*resolve, *reason, "--psp-reference", "stmt-77")
    assert done["status"] == "completed" and done["merchant_id"] == merchant.id
    event = await webhook(receiver, merchant, payment_id, "collect.payment.completed")
    assert event["data"]["object"]["psp_reference"] == "stmt-77"
    audited = await db.fetchrow(
        "SELECT actor, merchant_id, details FROM gateway.audit_log"
        " WHERE action = 'provider_review.resolve' AND details->>'payment_id' = $1",
        payment_id,
    )
    assert audited["actor"] == "fluxpay-admin:ops:e2e"
    assert audited["merchant_id"] == uuid.UUID(merchant.id)
    assert json.loads(audited["details"])["reason"] == "MTN statement line 77"
    with pytest.raises(RuntimeError, match="review_already_resolved"):
        stack.admin(*resolve, *reason)
    with pytest.raises(RuntimeError, match="review_not_found"):  # not the sandbox's review
        stack.admin("resolve-review", "--provider", "sandbox", "--payment-id", payment_id, *reason)
