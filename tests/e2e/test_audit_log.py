"""The audit log through the running stack: what the test did, with the right actor and
request id, filtered and paginated; never a secret nor a URL's credentials; append-only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from tests.e2e.conftest import Merchant
from tests.e2e.test_api_keys import client_for, new_key
from tests.e2e.test_collect_api import _balance_covers, create, reach
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


async def entries(merchant: Merchant, **params: Any) -> list[dict[str, Any]]:
    response = await merchant.client.get("/audit_log", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def default_key_id(merchant: Merchant) -> str:
    keys = (await merchant.client.get("/api_keys")).json()["data"]
    return str(next(k["id"] for k in keys if k["last4"] == merchant.test_key[-4:]))


async def test_audit_log_lists_what_was_done_with_its_actor(
    stack: Stack, merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    actor = await default_key_id(merchant)
    request_id = f"req-{uuid.uuid4()}"
    created = await merchant.client.post(
        "/api_keys", json={"name": "ops"}, headers={"X-Request-Id": request_id}
    )
    assert created.status_code == 201
    key = created.json()
    await merchant.client.post(f"/api_keys/{key['id']}/rotate", json={"expires_in": 0})
    await merchant.client.delete(f"/api_keys/{key['id']}")
    # Credentials in a URL are refused outright; a token in its query is kept out of the log.
    refused = "https://user:hunter2@hooks.example.com/fluxpay"
    assert (
        await merchant.client.put("/webhook_endpoint", json={"url": refused})
    ).status_code == 400
    secret_url = "https://hooks.example.com/fluxpay?token=s3cr3t"
    assert (await merchant.client.put("/webhook_endpoint", json={"url": secret_url})).is_success
    rotated = await merchant.client.post("/webhook_endpoint/rotate_secret")
    await merchant.client.put("/webhook_endpoint", json={"url": receiver.url})

    paid = await create(merchant, "+22997000001")
    open_payment = await create(merchant, "+22997000003")
    cancelled = await merchant.client.post(f"/collect/payments/{open_payment['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    await reach(merchant, paid["id"], "completed")
    await _balance_covers(merchant, 1000 * 100)
    refund = await merchant.client.post(
        f"/collect/payments/{paid['id']}/refunds",
        json={"amount": 1000},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert refund.status_code == 201, refund.text

    listed = await entries(merchant)
    by_key = [e for e in listed if e["actor"] != {"type": "admin"}]
    assert all(e["actor"] == {"type": "api_key", "api_key_id": actor} for e in by_key), by_key
    assert all(e["environment"] == "test" for e in by_key)
    assert {e["action"] for e in by_key} == {
        "api_key.created", "api_key.rotated", "api_key.revoked", "webhook_endpoint.updated",
        "webhook_secret.rotated", "payment.cancelled", "refund.created",
    }  # fmt: skip
    by_request = [e for e in listed if e["request_id"] == request_id]
    assert [e["action"] for e in by_request] == ["api_key.created"]
    assert by_request[0]["details"]["api_key_id"] == key["id"]
    assert next(e for e in listed if e["action"] == "refund.created")["details"]["amount"] == 1000
    # The operator created the merchant and its first keys.
    founding = [e for e in listed if e["actor"] == {"type": "admin"}]
    assert {e["action"] for e in founding} >= {"merchant.created", "api_key.created"}

    text = orjson.dumps(listed).decode()
    for secret in ("hunter2", "s3cr3t", "user:", rotated.json()["secret"], key["secret"]):
        assert secret not in text
    assert "https://hooks.example.com/fluxpay" in text


async def test_audit_log_is_filtered_and_paginated(merchant_factory) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/hook")
    start = datetime.now(UTC) - timedelta(seconds=5)
    for n in range(3):
        await new_key(merchant, name=f"k{n}")
    created = await entries(merchant, action="api_key.created", since=start.isoformat())
    # Three here and create-merchant's test key (its live key is logged in live).
    assert len(created) == 4, created
    assert await entries(merchant, action="api_key.created", until=start.isoformat()) == []
    page = (await merchant.client.get("/audit_log", params={"limit": 2})).json()
    assert len(page["data"]) == 2 and page["has_more"] is True
    after = await entries(merchant, starting_after=page["data"][-1]["id"])
    ids = [e["id"] for e in page["data"] + after]
    assert len(ids) == len(set(ids)) == len(await entries(merchant))
    for since in ("yesterday", "0001-01-01T00:01:00+01:01"):
        bad = await merchant.client.get("/audit_log", params={"since": since})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "since"
    twice = await merchant.client.get("/audit_log?action=api_key.created&action=x")
    assert twice.status_code == 400 and twice.json()["error"]["param"] == "action"
    year_zero = await merchant.client.post(
        "/events/replay", json={"since": "0001-01-01T00:01:00+01:01"}
    )
    assert year_zero.status_code == 400 and year_zero.json()["error"]["param"] == "since"


async def test_live_entries_stay_out_of_the_test_log(stack: Stack, merchant_factory) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/hook")
    async with client_for(stack, merchant.live_key) as live:
        made = await live.post("/api/v1/api_keys", json={"name": "live ops"})
        assert made.status_code == 201 and made.json()["environment"] == "live"
        live_log = (await live.get("/api/v1/audit_log")).json()["data"]
    test_log = await entries(merchant)
    assert made.json()["id"] in orjson.dumps(live_log).decode()
    assert made.json()["id"] not in orjson.dumps(test_log).decode()


async def test_audit_log_refuses_changes(db: asyncpg.Connection, merchant_factory) -> None:
    merchant_factory("http://127.0.0.1:9/hook")
    with pytest.raises(asyncpg.RestrictViolationError):
        await db.execute("UPDATE gateway.audit_log SET action = 'x'")
    with pytest.raises(asyncpg.RestrictViolationError):
        await db.execute("DELETE FROM gateway.audit_log")


async def test_operator_revocation_is_logged_as_admin(stack: Stack, merchant_factory) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/hook")
    key = await new_key(merchant, name="leaked")
    assert stack.admin("revoke-key", "--api-key", key["secret"]) == {"revoked": True}
    async with client_for(stack, key["secret"]) as client:
        refused = await client.get("/api/v1/balance")
        assert refused.json()["error"]["code"] == "api_key_revoked"
    revoked = await entries(merchant, action="api_key.revoked")
    assert [(e["actor"], e["details"]["api_key_id"]) for e in revoked] == [
        ({"type": "admin"}, key["id"])
    ]
    assert revoked[0]["environment"] == "test" and revoked[0]["request_id"] is None


async def test_nul_in_a_list_cursor_is_a_400(merchant_factory) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/hook")
    for path in ("/events", "/balance/transactions", "/api_keys", "/audit_log"):
        response = await merchant.client.get(path, params={"starting_after": "\x00"})
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"]["param"] == "starting_after"
    typed = await merchant.client.get("/events", params={"type": "a\x00"})
    assert typed.status_code == 400 and typed.json()["error"]["param"] == "type"
