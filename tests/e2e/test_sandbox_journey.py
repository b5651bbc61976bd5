"""The foundation journey: one payment carried through every service, as processes."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from fluxpay_testing.infra import wait_for

from tests.e2e.conftest import Merchant, idempotency, payment_body
from tests.support.receiver import WebhookReceiver

pytestmark = pytest.mark.e2e


async def _status_of(merchant: Merchant, payment_id: str) -> str:
    response = await merchant.client.get(f"/collect/payments/{payment_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


async def _create(merchant: Merchant, phone: str) -> dict[str, object]:
    response = await merchant.client.post(
        "/collect/payments", json=payment_body(phone), headers=idempotency()
    )
    assert response.status_code == 201, response.text
    payment = response.json()
    assert payment["object"] == "collect.payment"
    assert payment["idempotent_replay"] is False
    assert payment["amount"] == 3000 and payment["amount_minor"] == 300000
    assert payment["environment"] == "test"
    assert payment["next_action"]["type"] == "await_customer_validation"
    # The default platform fee (1.5 %) is shown on the payment, as the ledger books it.
    assert payment["platform_fee_minor"] == 4500 and payment["net_amount_minor"] == 295500
    return payment


async def _ledger_entries(db: asyncpg.Connection, payment_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT e.id, sum(p.amount_minor) AS total, count(p.*) AS legs"
        " FROM ledger.journal_entry e JOIN ledger.posting p ON p.entry_id = e.id"
        " WHERE e.payment_id = $1::uuid GROUP BY e.id",
        payment_id,
    )


async def test_sandbox_numbers_reach_their_outcomes_with_signed_webhooks_and_books(
    merchant_factory, receiver: WebhookReceiver, db: asyncpg.Connection
) -> None:
    merchant = merchant_factory(receiver.url)
    approved = await _create(merchant, "+22997000001")
    refused = await _create(merchant, "+22997000002")
    silent = await _create(merchant, "+22997000003")

    async def settled() -> bool:
        return (
            await _status_of(merchant, str(approved["id"])) == "completed"
            and await _status_of(merchant, str(refused["id"])) == "failed"
        )

    await wait_for(settled, timeout=30, what="approved completed and refused failed")

    async def silent_processing() -> bool:
        # Its own initiation may still be queued behind the others' on a busy machine.
        return await _status_of(merchant, str(silent["id"])) == "processing"

    assert await wait_for(silent_processing, timeout=30, what="the silent payment processing")

    def event_types(payment_id: object) -> set[str]:
        events = receiver.verified_events(merchant.webhook_secret)
        return {
            str(e["type"])
            for e, _ in events
            if isinstance(e["data"], dict) and e["data"]["object"]["id"] == payment_id
        }

    async def webhooks_arrived() -> bool:
        return "collect.payment.completed" in event_types(approved["id"]) and (
            "collect.payment.failed" in event_types(refused["id"])
        )

    await wait_for(webhooks_arrived, timeout=30, what="signed completed and failed webhooks")
    unsigned = [r for r in receiver.snapshot() if not r.headers.get("X-FluxPay-Signature")]
    assert unsigned == []
    completed = next(
        e
        for e, _ in receiver.verified_events(merchant.webhook_secret)
        if e["type"] == "collect.payment.completed"
    )
    assert completed["object"] == "event" and completed["merchant_id"] == merchant.id
    assert completed["data"]["object"]["status"] == "completed"

    async def booked() -> list[asyncpg.Record]:
        return await _ledger_entries(db, str(approved["id"]))

    entries = await wait_for(booked, timeout=30, what="the ledger entry")
    assert len(entries) == 1 and entries[0]["total"] == 0 and entries[0]["legs"] >= 2
    assert await _ledger_entries(db, str(refused["id"])) == []


async def test_silent_customer_payment_expires_with_its_event(
    merchant_factory, receiver: WebhookReceiver
) -> None:
    merchant = merchant_factory(receiver.url)
    body = payment_body("+22997000003", expires_in_seconds=300)
    response = await merchant.client.post("/collect/payments", json=body, headers=idempotency())
    assert response.status_code == 201, response.text
    payment_id = response.json()["id"]

    async def expired() -> bool:
        return await _status_of(merchant, payment_id) == "expired"

    await wait_for(expired, timeout=30, what="expiry of the unanswered payment")

    async def expired_event() -> bool:
        return any(
            e["type"] == "collect.payment.expired" and e["data"]["object"]["id"] == payment_id
            for e, _ in receiver.verified_events(merchant.webhook_secret)
        )

    await wait_for(expired_event, timeout=30, what="the signed expired webhook")


async def test_payment_is_found_by_reference_and_hidden_from_other_merchants(
    merchant_factory, receiver: WebhookReceiver
) -> None:
    owner = merchant_factory(receiver.url)
    stranger = merchant_factory(receiver.url)
    created = await _create(owner, "+22997000001")
    by_reference = await owner.client.get(f"/collect/payments/{created['reference']}")
    assert by_reference.status_code == 200 and by_reference.json()["id"] == created["id"]
    base = f"/collect/payments/{created['reference']}"
    attempts = [
        ("GET", f"/collect/payments/{created['id']}", None),
        ("GET", base, None),
        ("POST", f"{base}/confirm", {"otp": "123456"}),
        ("POST", f"{base}/cancel", {}),
        ("POST", f"{base}/refunds", {"amount": 100}),
        ("POST", f"/collect/payments/{uuid.uuid4()}/cancel", {}),
    ]
    for method, path, body in attempts:
        response = await stranger.client.request(method, path, json=body, headers=idempotency())
        assert response.status_code == 404, (path, response.text)
        error = response.json()["error"]
        assert error["code"] == "payment_not_found" and error["param"] == "reference_or_id"
    untouched = await owner.client.get(f"/collect/payments/{created['id']}")
    assert untouched.json()["status"] != "cancelled"
