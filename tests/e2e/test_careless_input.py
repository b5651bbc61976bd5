"""What an outside probe sent the running stack as an attacker or a careless merchant would:
NUL characters, oversized bodies and metadata, deep nesting, huge numbers, invalid UTF-8,
phones written by hand, references that cannot be read back, retried refunds, and the
hosted page's headers. Each is refused at the edge with a documented code and its field,
and nothing of it reaches a service or a dead-letter queue."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
from fluxpay_testing.infra import Infra

from tests.e2e.conftest import Merchant, idempotency, payment_body
from tests.e2e.test_collect_api import _balance_covers, create, reach

pytestmark = pytest.mark.e2e
DEAD_LETTER_QUEUES = ("orchestrator.commands.dlq", "webhooks.commands.dlq")
PAYMENT = "/collect/payments"
SOME_ID = "2b4f9a34-3f1e-4c55-9d43-2b0f6c4f1f0e"


async def _dead_letter_bodies(infra: Infra) -> list[bytes]:
    """Every message in the command DLQs, left where it is (unacked, requeued on close)."""
    connection = await aio_pika.connect(infra.rabbitmq_url)
    try:
        channel = await connection.channel()
        found = []
        for name in DEAD_LETTER_QUEUES:
            queue = await channel.get_queue(name, ensure=True)
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                found.append(message.body)
        return found
    finally:
        await connection.close()


def _with_nul(path: str) -> dict[str, Any]:
    """A valid create with a NUL in the field at dotted `path` (a `*` key: in the key)."""
    body = payment_body("+22997000001", metadata={"order": "42"}, external_merchant_id="shop")
    *parents, last = path.split(".")
    target: Any = body
    for step in parents:
        target = target.setdefault(step, {})
    if last == "*":
        target["ord\u0000er"] = target.pop("order")
    else:
        target[last] = f"{target.get(last, 'x')}\u0000"
    return body


@pytest.fixture
async def merchant(merchant_factory, receiver) -> AsyncIterator[Merchant]:
    yield merchant_factory(receiver.url)


@pytest.mark.parametrize(
    ("method", "url", "body", "param"),
    [
        ("POST", PAYMENT, _with_nul("reference"), "reference"),
        ("POST", PAYMENT, _with_nul("description"), "description"),
        ("POST", PAYMENT, _with_nul("metadata.order"), "metadata.order"),
        ("POST", PAYMENT, _with_nul("metadata.*"), "metadata.ord\ufffder"),
        ("POST", PAYMENT, _with_nul("customer.first_name"), "customer.first_name"),
        ("POST", PAYMENT, _with_nul("customer.phone"), "customer.phone"),
        ("POST", PAYMENT, _with_nul("external_merchant_id"), "external_merchant_id"),
        ("POST", PAYMENT, _with_nul("callback_url"), "callback_url"),
        ("POST", f"{PAYMENT}/{SOME_ID}/refunds", {"reason": "dup\u0000"}, "reason"),
        ("POST", f"{PAYMENT}/{SOME_ID}/cancel", {"reason": "\u0000"}, "reason"),
        ("PUT", "/webhook_endpoint", {"url": "https://shop.example/\u0000"}, "url"),
        ("GET", f"{PAYMENT}/%00", None, "reference_or_id"),
        ("POST", f"{PAYMENT}/a%00b/cancel", {}, "reference_or_id"),
        ("GET", "/events/%00", None, "event_id"),
        ("GET", "/events?type=%00", None, "type"),
        ("GET", "/events?starting_after=%00", None, "starting_after"),
        ("GET", "/balance/transactions?starting_after=x%00", None, "starting_after"),
    ],
)
async def test_nul_anywhere_is_a_400_naming_its_field_and_nothing_is_dead_lettered(
    merchant: Merchant, infra: Infra, method: str, url: str, body: Any, param: str
) -> None:
    correlation = str(uuid.uuid4())
    response = await merchant.client.request(
        method, url, json=body, headers={**idempotency(), "X-Request-Id": correlation}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_characters" and error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert response.headers["X-Request-Id"] == correlation
    dead = await _dead_letter_bodies(infra)
    assert not [b for b in dead if correlation.encode() in b]


async def test_oversized_bodies_are_413_even_when_chunked(
    merchant: Merchant, db: asyncpg.Connection
) -> None:
    body = payment_body("+22997000001", description="x", metadata={"blob": "x" * 500})
    body["padding"] = "p" * 300_000
    sized = await merchant.client.post(PAYMENT, json=body, headers=idempotency())
    assert sized.status_code == 413
    assert sized.json()["error"]["code"] == "request_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(6):
            yield b" " * 50_000  # whitespace: valid JSON so far, and no Content-Length
        yield httpx.Request("POST", "/", json=body).content

    chunked = await merchant.client.post(
        PAYMENT, content=chunks(), headers={**idempotency(), "Content-Type": "application/json"}
    )
    assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "request_too_large"
    stored = await db.fetchval(
        "SELECT count(*) FROM orchestrator.payment WHERE reference = $1", body["reference"]
    )
    assert stored == 0


@pytest.mark.parametrize(
    ("metadata", "param"),
    [
        ({f"k{i}": i for i in range(51)}, "metadata"),
        ({"k" * 41: "v"}, "metadata." + "k" * 41),
        ({"note": "v" * 501}, "metadata.note"),
    ],
)
async def test_metadata_beyond_stripe_bounds_is_refused(
    merchant: Merchant, metadata: dict[str, object], param: str
) -> None:
    body = payment_body("+22997000001", metadata=metadata)
    response = await merchant.client.post(PAYMENT, json=body, headers=idempotency())
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "parameter_invalid"
    assert response.json()["error"]["param"] == param


def _raw_create(inner: bytes) -> bytes:
    """A create whose metadata `note` is `inner`, raw bytes in the JSON text."""
    base = httpx.Request("POST", "/", json=payment_body("+22997000001", metadata={"note": 0}))
    return base.content.replace(b'"note":0', b'"note":' + inner)


@pytest.mark.parametrize(
    ("inner", "code", "param"),
    [
        (b"[" * 5000 + b"]" * 5000, "nesting_too_deep", "metadata.note"),
        (b"9" * 5000, "number_out_of_range", "metadata.note"),
        (b'"caf\xe9"', "invalid_characters", "metadata.note"),
    ],
)
async def test_careless_json_is_a_documented_400_with_its_field(
    merchant: Merchant, inner: bytes, code: str, param: str
) -> None:
    response = await merchant.client.post(
        PAYMENT,
        content=_raw_create(inner),
        headers={**idempotency(), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["param"].startswith(param)


async def test_a_hand_written_phone_goes_on_in_e164(
    merchant: Merchant, db: asyncpg.Connection
) -> None:
    created = await create(merchant, "+229 95-00.00 01", operator="moov")
    assert created["customer"]["phone"] == "+22995000001"
    stored = await db.fetchval(
        "SELECT customer->>'phone' FROM orchestrator.payment WHERE id = $1::uuid", created["id"]
    )
    assert stored == "+22995000001"
    refused = await merchant.client.post(
        PAYMENT, json=payment_body("+229 95 00 00 01 (bureau)"), headers=idempotency()
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "phone_invalid"


@pytest.mark.parametrize("reference", ["order/1001", "..", "50%off"])
async def test_a_reference_that_cannot_be_read_back_is_refused(
    merchant: Merchant, reference: str
) -> None:
    body = payment_body("+22997000001", reference=reference)
    response = await merchant.client.post(PAYMENT, json=body, headers=idempotency())
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "parameter_invalid" and error["param"] == "reference"
    assert "readable back" in error["message"]


async def test_refunds_need_a_key_and_a_replay_answers_like_a_create(
    merchant: Merchant, db: asyncpg.Connection
) -> None:
    payment = await create(merchant, "+22997000001")
    await reach(merchant, payment["id"], "completed")
    await _balance_covers(merchant, 1000 * 100)
    url = f"{PAYMENT}/{payment['id']}/refunds"
    keyless = await merchant.client.post(url, json={"amount": 1000})
    assert keyless.status_code == 400
    assert keyless.json()["error"]["code"] == "idempotency_key_missing"
    assert keyless.json()["error"]["param"] == "Idempotency-Key"

    key = idempotency()
    first = await merchant.client.post(url, json={"amount": 1000}, headers=key)
    assert first.status_code == 201, first.text
    assert first.json()["idempotent_replay"] is False
    again = await merchant.client.post(url, json={"amount": 1000}, headers=key)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["idempotent_replay"] is True
    assert again.headers["Idempotent-Replayed"] == "true"
    count = await db.fetchval(
        "SELECT count(*) FROM orchestrator.refund WHERE payment_id = $1::uuid", payment["id"]
    )
    assert count == 1


async def test_api_answers_and_the_hosted_page_carry_security_headers(
    stack, merchant: Merchant
) -> None:
    listed = await merchant.client.get("/collect/payments/operators/")
    assert listed.headers["X-Content-Type-Options"] == "nosniff"
    missing = await merchant.client.get(f"{PAYMENT}/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.headers["X-Content-Type-Options"] == "nosniff"

    body = payment_body("+22997000001", mode="hosted")
    del body["operator"], body["customer"]
    hosted = await merchant.client.post(PAYMENT, json=body, headers=idempotency())
    assert hosted.status_code == 201, hosted.text
    async with httpx.AsyncClient() as customer:
        page = await customer.get(hosted.json()["checkout_url"])
        assert page.status_code == 200
        policy = page.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in policy and "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy and page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert "<script>" not in page.text and "<style>" not in page.text
        script = await customer.get(f"{stack.base_url}/checkout/assets/checkout.js")
        assert script.status_code == 200
        assert script.headers["Content-Type"].startswith("text/javascript")
