"""The whole Collect API through the running stack: OTP, cancel, refunds, expiry and late
success, idempotency, validation errors, isolation between merchants and environments."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from fluxpay_testing.infra import wait_for

from tests.e2e.conftest import Merchant, idempotency, payment_body
from tests.support.receiver import WebhookReceiver

pytestmark = pytest.mark.e2e


async def create(merchant: Merchant, phone: str, **overrides: object) -> dict[str, Any]:
    response = await merchant.client.post(
        "/collect/payments", json=payment_body(phone, **overrides), headers=idempotency()
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def fetch(merchant: Merchant, payment_id: object) -> dict[str, Any]:
    response = await merchant.client.get(f"/collect/payments/{payment_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def reach(merchant: Merchant, payment_id: object, status: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        payment = await fetch(merchant, payment_id)
        return payment if payment["status"] == status else None

    return await wait_for(probe, timeout=30, what=f"payment {payment_id} {status}")


def events_for(
    receiver: WebhookReceiver, merchant: Merchant, payment_id: object
) -> list[dict[str, Any]]:
    return [
        e
        for e, _ in receiver.verified_events(merchant.webhook_secret)
        if isinstance(e["data"], dict) and e["data"]["object"]["id"] == payment_id
    ]


async def webhook(
    receiver: WebhookReceiver, merchant: Merchant, payment_id: object, event_type: str
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        found = [e for e in events_for(receiver, merchant, payment_id) if e["type"] == event_type]
        return found[-1] if found else None

    return await wait_for(probe, timeout=30, what=f"signed {event_type} webhook")


async def test_otp_payment_needs_the_right_code(merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    payment = await create(merchant, "+22997000001", operator="coris")
    assert payment["status"] == "awaiting_otp"
    assert payment["next_action"]["type"] == "confirm_otp"
    confirm = f"/collect/payments/{payment['id']}/confirm"

    wrong = await merchant.client.post(confirm, json={"otp": "000000"})
    assert wrong.status_code == 422, wrong.text
    assert wrong.json()["error"]["code"] == "otp_invalid"
    assert wrong.json()["error"]["param"] == "otp"

    right = await merchant.client.post(confirm, json={"otp": "123456"})
    assert right.status_code == 200, right.text
    assert right.json()["status"] in ("processing", "completed")
    await reach(merchant, payment["id"], "completed")
    await webhook(receiver, merchant, payment["id"], "collect.payment.completed")

    again = await merchant.client.post(confirm, json={"otp": "123456"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "payment_not_awaiting_otp"


async def test_three_wrong_otps_fail_the_payment(merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    payment = await create(merchant, "+22997000001", operator="coris")
    confirm = f"/collect/payments/{payment['id']}/confirm"
    codes = []
    for _ in range(3):
        response = await merchant.client.post(confirm, json={"otp": "999999"})
        assert response.status_code == 422
        codes.append(response.json()["error"]["code"])
    assert codes == ["otp_invalid", "otp_invalid", "otp_attempts_exceeded"]
    failed = await reach(merchant, payment["id"], "failed")
    assert failed["failure_code"] == "otp_attempts_exceeded"
    await webhook(receiver, merchant, payment["id"], "collect.payment.failed")


async def test_cancel_an_open_payment_once(merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    payment = await create(merchant, "+22997000003")
    # sync=true asks the provider: the silent customer's push is still processing there.
    synced = await merchant.client.get(
        f"/collect/payments/{payment['id']}", params={"sync": "true"}
    )
    assert synced.status_code == 200 and synced.json()["status"] in ("pending", "processing")
    bad_sync = await merchant.client.get(
        f"/collect/payments/{payment['id']}", params={"sync": "perhaps"}
    )
    assert bad_sync.status_code == 400 and bad_sync.json()["error"]["param"] == "sync"
    cancel = f"/collect/payments/{payment['reference']}/cancel"
    response = await merchant.client.post(cancel, json={"reason": "customer_left"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["next_action"]["type"] == "none"
    again = await merchant.client.post(cancel, json={})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "payment_not_cancellable"
    await webhook(receiver, merchant, payment["id"], "collect.payment.cancelled")


async def test_partial_then_full_refund_with_events_and_books(
    merchant_factory, receiver, db: asyncpg.Connection
) -> None:
    merchant = merchant_factory(receiver.url)
    # Refunds are paid from the available balance, net of fees: a second sale funds them.
    funding = await create(merchant, "+22997000001")
    payment = await create(merchant, "+22997000001")
    await reach(merchant, funding["id"], "completed")
    await reach(merchant, payment["id"], "completed")
    await _balance_covers(merchant, 2 * 3000 * 100 * 985 // 1000)
    refunds = f"/collect/payments/{payment['id']}/refunds"

    early = await merchant.client.post(refunds, json={"amount": 5000}, headers=idempotency())
    assert early.status_code == 422 and early.json()["error"]["code"] == "refund_exceeds_payment"
    assert early.json()["error"]["param"] == "amount"

    partial = await merchant.client.post(
        refunds, json={"amount": 1000, "reason": "damaged"}, headers=idempotency()
    )
    assert partial.status_code == 201, partial.text
    first = partial.json()
    assert first["object"] == "collect.refund" and first["status"] == "pending"
    assert first["amount"] == 1000 and first["payment_id"] == payment["id"]

    async def partly_refunded() -> bool:
        current = await fetch(merchant, payment["id"])
        return current["status"] == "completed" and current["refunded_amount"] == 1000

    await wait_for(partly_refunded, timeout=30, what="the partial refund settled")
    rest = await merchant.client.post(refunds, json={}, headers=idempotency())
    assert rest.status_code == 201, rest.text
    assert rest.json()["amount"] == 2000
    await reach(merchant, payment["id"], "refunded")

    async def two_refund_events() -> bool:
        kinds = [e["type"] for e in events_for(receiver, merchant, payment["id"])]
        return kinds.count("collect.refund.completed") == 2

    await wait_for(two_refund_events, timeout=30, what="two refund.completed webhooks")
    after = await merchant.client.post(refunds, json={"amount": 100}, headers=idempotency())
    assert after.status_code == 409 and after.json()["error"]["code"] == "payment_not_refundable"

    async def booked() -> list[asyncpg.Record]:
        rows = await db.fetch(
            "SELECT e.id, sum(p.amount_minor) AS total FROM ledger.journal_entry e"
            " JOIN ledger.posting p ON p.entry_id = e.id WHERE e.payment_id = $1::uuid"
            " GROUP BY e.id",
            payment["id"],
        )
        return rows if len(rows) == 3 else []

    entries = await wait_for(booked, timeout=30, what="payment and two refund entries")
    assert all(e["total"] == 0 for e in entries)


async def _balance_covers(merchant: Merchant, minor: int) -> None:
    async def probe() -> bool:
        balance = (await merchant.client.get("/balance")).json()
        return sum(b["amount_minor"] for b in balance["available"]) >= minor

    await wait_for(probe, timeout=30, what=f"an available balance of {minor} minor")


async def test_refund_beyond_the_available_balance_is_refused(merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    payment = await create(merchant, "+22997000001")
    await reach(merchant, payment["id"], "completed")
    await _balance_covers(merchant, 3000 * 100 * 985 // 1000)
    # The payment's fee stays with the platform: its full amount is not available.
    response = await merchant.client.post(
        f"/collect/payments/{payment['id']}/refunds", json={}, headers=idempotency()
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "insufficient_balance"
    assert response.json()["error"]["param"] == "amount"
    partial = await merchant.client.post(
        f"/collect/payments/{payment['id']}/refunds", json={"amount": 2000}, headers=idempotency()
    )
    assert partial.status_code == 201, partial.text
    # The pending refund already spends the balance.
    more = await merchant.client.post(
        f"/collect/payments/{payment['id']}/refunds", json={"amount": 1000}, headers=idempotency()
    )
    assert more.status_code == 422 and more.json()["error"]["code"] == "insufficient_balance"


async def test_declined_refund_leaves_the_payment_completed(merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    payment = await create(merchant, "+22997000004")
    await reach(merchant, payment["id"], "completed")
    await _balance_covers(merchant, 1000 * 100)
    response = await merchant.client.post(
        f"/collect/payments/{payment['id']}/refunds", json={"amount": 1000}, headers=idempotency()
    )
    assert response.status_code == 201, response.text
    failed = await webhook(receiver, merchant, payment["id"], "collect.refund.failed")
    assert failed["data"]["refund"]["status"] == "failed"
    current = await fetch(merchant, payment["id"])
    assert current["status"] == "completed" and current["refunded_amount"] == 0


async def test_open_payment_cannot_be_refunded(merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    payment = await create(merchant, "+22997000003")
    response = await merchant.client.post(
        f"/collect/payments/{payment['id']}/refunds", json={}, headers=idempotency()
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "payment_not_refundable"


async def test_late_success_after_expiry_is_recorded_booked_and_reported(
    merchant_factory, receiver, db: asyncpg.Connection
) -> None:
    merchant = merchant_factory(receiver.url)
    payment = await create(merchant, "+22997000005", expires_in_seconds=300)
    await webhook(receiver, merchant, payment["id"], "collect.payment.expired")
    completed = await webhook(receiver, merchant, payment["id"], "collect.payment.completed")
    assert completed["data"]["object"]["status"] == "completed"
    assert (await fetch(merchant, payment["id"]))["status"] == "completed"

    async def booked() -> int:
        return int(
            await db.fetchval(
                "SELECT count(*) FROM ledger.journal_entry WHERE payment_id = $1::uuid",
                payment["id"],
            )
        )

    assert await wait_for(booked, timeout=30, what="the late success booked") == 1


async def test_idempotent_replay_and_conflicts(merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    body = payment_body("+22997000003", metadata={"order": 42}, external_merchant_id="shop-7")
    key = idempotency()
    first = await merchant.client.post("/collect/payments", json=body, headers=key)
    assert first.status_code == 201
    assert first.json()["metadata"] == {"order": 42}
    assert first.json()["external_merchant_id"] == "shop-7"
    replay = await merchant.client.post("/collect/payments", json=body, headers=key)
    assert replay.status_code == 200
    assert replay.json()["id"] == first.json()["id"] and replay.json()["idempotent_replay"] is True

    changed = await merchant.client.post(
        "/collect/payments", json={**body, "amount": 4000}, headers=key
    )
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "idempotency_key_reused"

    same_reference = await merchant.client.post(
        "/collect/payments", json=body, headers=idempotency()
    )
    assert same_reference.status_code == 409
    assert same_reference.json()["error"]["code"] == "reference_already_exists"
    assert same_reference.json()["error"]["param"] == "reference"


async def test_a_hundred_concurrent_identical_requests_create_one_payment(
    merchant_factory, receiver, db: asyncpg.Connection
) -> None:
    merchant = merchant_factory(receiver.url)
    body = payment_body("+22997000003")
    key = idempotency()
    responses = await asyncio.gather(
        *(merchant.client.post("/collect/payments", json=body, headers=key) for _ in range(100))
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1, statuses
    # A burst of a hundred may meet the gateway's admission bound: refused, nothing created.
    assert set(statuses) <= {200, 201, 409, 503}
    refused = {r.json()["error"]["code"] for r in responses if r.status_code == 503}
    assert refused <= {"service_overloaded"}
    ids = {r.json()["id"] for r in responses if r.status_code in (200, 201)}
    assert len(ids) == 1
    busy = {r.json()["error"]["code"] for r in responses if r.status_code == 409}
    assert busy <= {"idempotency_key_in_use"}
    count = await db.fetchval(
        "SELECT count(*) FROM orchestrator.payment WHERE reference = $1", body["reference"]
    )
    assert count == 1


@pytest.mark.parametrize(
    ("overrides", "code", "param"),
    [
        ({"currency": "XAF"}, "currency_not_supported", "currency"),
        ({"operator": None}, "parameter_invalid", "operator"),
        ({"amount": 99}, "parameter_invalid", "amount"),
        ({"amount": "3000"}, "parameter_invalid", "amount"),
        ({"expires_in_seconds": 100}, "parameter_invalid", "expires_in_seconds"),
        ({"operator": "orange"}, "operator_not_supported", "operator"),
        ({"customer": {"phone": "97000001"}}, "phone_invalid", "customer.phone"),
        ({"customer": {"phone": "+22965000001"}}, "phone_operator_mismatch", "customer.phone"),
        ({"country": "CI", "customer": {"phone": "+225070000001"}}, "phone_invalid", None),
        ({"callback_url": "not a url"}, "parameter_invalid", "callback_url"),
        ({"reference": ""}, "parameter_invalid", "reference"),
    ],
)
async def test_bad_input_is_a_clear_400_and_stores_nothing(
    merchant_factory, receiver, overrides: dict[str, object], code: str, param: str | None
) -> None:
    merchant = merchant_factory(receiver.url)
    body = payment_body("+22997000001", **overrides)
    key = idempotency()
    response = await merchant.client.post("/collect/payments", json=body, headers=key)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["type"] == "invalid_request_error"
    assert error["doc_url"].endswith(f"#{code}") and error["message"]
    if param is not None:
        assert error["param"] == param
    # The key was not consumed by the refused request.
    fixed = await merchant.client.post(
        "/collect/payments", json=payment_body("+22997000003"), headers=key
    )
    assert fixed.status_code == 201, fixed.text


async def test_missing_or_bad_credentials_and_keys(stack, merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    url = f"{stack.base_url}/api/v1/collect/payments"
    async with httpx.AsyncClient() as anonymous:
        for headers, code in [
            ({}, "api_key_missing"),
            ({"Authorization": "Bearer nope"}, "api_key_invalid"),
            ({"X-API-Key": str(uuid.uuid4())}, "api_key_invalid"),
            ({"Authorization": "Basic abc"}, "api_key_invalid"),
        ]:
            response = await anonymous.post(url, json=payment_body("+22997000001"), headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == code
            assert response.json()["error"]["type"] == "authentication_error"
    no_key = await merchant.client.post("/collect/payments", json=payment_body("+22997000001"))
    assert no_key.status_code == 400
    assert no_key.json()["error"]["code"] == "idempotency_key_missing"
    bad_key = await merchant.client.post(
        "/collect/payments",
        json=payment_body("+22997000001"),
        headers={"Idempotency-Key": "not-a-uuid"},
    )
    assert bad_key.json()["error"]["code"] == "idempotency_key_invalid"


async def test_test_and_live_and_merchants_never_see_each_other(
    stack, merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    payment = await create(merchant, "+22997000003")
    async with httpx.AsyncClient(base_url=f"{stack.base_url}/api/v1") as client:
        live = await client.get(
            f"/collect/payments/{payment['id']}", headers={"X-API-Key": merchant.live_key}
        )
        assert live.status_code == 404
        # The key decides the environment: the header cannot reach into live.
        header = await client.get(
            f"/collect/payments/{payment['id']}",
            headers={"X-API-Key": merchant.test_key, "X-Fluxx-Environment": "live"},
        )
        assert header.status_code == 200 and header.json()["environment"] == "test"


async def test_callback_url_overrides_the_merchant_endpoint(merchant_factory, receiver) -> None:
    other = WebhookReceiver().start()
    try:
        merchant = merchant_factory(receiver.url)
        payment = await create(merchant, "+22997000001", callback_url=other.url)
        await webhook(other, merchant, payment["id"], "collect.payment.completed")
        assert events_for(receiver, merchant, payment["id"]) == []
    finally:
        other.stop()


async def test_operator_catalogue(merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    response = await merchant.client.get("/collect/payments/operators/", params={"country": "BJ"})
    assert response.status_code == 200
    (benin,) = response.json()["data"]
    codes = {op["code"]: op for op in benin["operators"]}
    assert {"mtn", "moov", "celtiis", "coris"} <= set(codes)
    assert codes["coris"]["otp_required"] is True and benin["currency"] == "XOF"
    everything = await merchant.client.get("/collect/payments/operators/")
    assert {c["country"] for c in everything.json()["data"]} == {"BJ", "TG", "CI", "RW"}
    bad = await merchant.client.get("/collect/payments/operators/", params={"country": "FR"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "country"


async def test_every_payment_event_type_is_emitted(merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    ok = await create(merchant, "+22997000001")
    for kind in ("created", "processing", "completed"):
        # Deliveries run in parallel: each event is awaited, not assumed to precede the next.
        await webhook(receiver, merchant, ok["id"], f"collect.payment.{kind}")
