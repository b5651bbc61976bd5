"""API keys through the running stack: roles refused on every write they lack, revocation
effective on the next request, rotation's grace period, nothing written by a failed
creation, and environments kept apart."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from fluxpay_testing.infra import wait_for

from tests.e2e.conftest import Merchant, idempotency, payment_body
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
READS = ("get", "head", "options")


def client_for(stack: Stack, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=15
    )


async def new_key(merchant: Merchant, **body: Any) -> dict[str, Any]:
    response = await merchant.client.post("/api_keys", json={"name": "k", **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def gateway_writes(stack: Stack) -> list[tuple[str, str]]:
    """Every write operation the gateway documents, path ids filled with unknown ids."""
    async with httpx.AsyncClient(base_url=stack.base_url) as anonymous:
        document = (await anonymous.get("/api/v1/openapi.json")).json()
    writes = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method not in READS and operation.get("security"):
                filled = path.replace("{event_id}", "evt_x")
                # Every other path id (payment, key, link, payment type...): an unknown one.
                filled = re.sub(r"\{[a-z_]+\}", lambda _: str(uuid.uuid4()), filled)
                writes.append((method, filled))
    return writes


async def test_read_only_key_is_refused_on_every_write(stack, merchant_factory) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/hook")
    read_only = await new_key(merchant, role="read_only")
    writes = await gateway_writes(stack)
    assert ("post", "/api/v1/api_keys") in writes and len(writes) >= 12, writes
    async with client_for(stack, read_only["secret"]) as client:
        for method, path in writes:
            response = await client.request(method, path, json={}, headers=idempotency())
            assert response.status_code == 403, (method, path, response.text)
            error = response.json()["error"]
            assert error["code"] == "insufficient_permissions", error
            assert error["type"] == "permission_error"
        operators = await client.get("/api/v1/collect/payments/operators/")
        assert operators.status_code == 200, operators.text


async def test_payments_write_key_creates_payments_but_never_refunds(
    stack, merchant_factory
) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/hook")
    writer = await new_key(merchant, role="payments_write")
    async with client_for(stack, writer["secret"]) as client:
        body = payment_body("+22997000001")
        created = await client.post("/api/v1/collect/payments", json=body, headers=idempotency())
        assert created.status_code == 201, created.text
        payment = f"/api/v1/collect/payments/{created.json()['id']}"
        assert (await client.get(payment)).status_code == 200
        for path in (f"{payment}/refunds", f"{payment}/cancel", "/api/v1/api_keys"):
            refused = await client.post(path, json={"name": "x"}, headers=idempotency())
            assert refused.status_code == 403, (path, refused.text)
            assert refused.json()["error"]["code"] == "insufficient_permissions"


async def test_new_key_is_shown_once_and_listed_without_its_secret(stack, merchant_factory) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/hook")
    created = await new_key(merchant, name="Shop backend", role="payments_write")
    assert created["environment"] == "test" and created["role"] == "payments_write"
    assert created["prefix"] == created["secret"][:8]
    async with client_for(stack, created["secret"]) as client:
        assert (await client.get("/api/v1/balance")).status_code == 200
    listed = (await merchant.client.get("/api_keys")).json()
    mine = next(k for k in listed["data"] if k["id"] == created["id"])
    assert "secret" not in mine and mine["name"] == "Shop backend"
    assert mine["last_used_at"] is not None and mine["revoked"] is False
    assert created["secret"] not in str(listed)
    assert {k["environment"] for k in listed["data"]} == {"test"}
    # The live key lists live keys only; a test key never sees nor revokes one.
    async with client_for(stack, merchant.live_key) as live:
        live_keys = (await live.get("/api/v1/api_keys")).json()["data"]
        assert {k["environment"] for k in live_keys} == {"live"}
        revoke_live = await merchant.client.delete(f"/api_keys/{live_keys[0]['id']}")
        assert revoke_live.status_code == 404, revoke_live.text
        assert (await live.get("/api/v1/balance")).status_code == 200


async def test_list_is_paginated(merchant_factory) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/hook")
    for n in range(3):
        await new_key(merchant, name=f"key {n}")
    first = (await merchant.client.get("/api_keys", params={"limit": 2})).json()
    assert len(first["data"]) == 2 and first["has_more"] is True
    rest = await merchant.client.get(
        "/api_keys", params={"limit": 2, "starting_after": first["data"][-1]["id"]}
    )
    # Three created here and the merchant's first test key.
    assert len(rest.json()["data"]) == 2 and rest.json()["has_more"] is False
    seen = {k["id"] for k in first["data"] + rest.json()["data"]}
    assert len(seen) == 4


async def test_revoked_key_is_refused_on_its_next_request(stack, merchant_factory) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/hook")
    created = await new_key(merchant)
    async with client_for(stack, created["secret"]) as client:
        assert (await client.get("/api/v1/balance")).status_code == 200
        revoked = await merchant.client.delete(f"/api_keys/{created['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked"] is True
        refused = await client.get("/api/v1/balance")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "api_key_revoked"


async def test_rotated_key_works_during_its_grace_then_is_refused(stack, merchant_factory) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/hook")
    old = await new_key(merchant, name="rotating", role="read_only")
    rotated = await merchant.client.post(f"/api_keys/{old['id']}/rotate", json={"expires_in": 3})
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["id"] != old["id"] and new["secret"] != old["secret"]
    assert new["role"] == "read_only" and new["name"] == "rotating"
    assert new["previous_key"]["rotated_to"] == new["id"]
    async with client_for(stack, old["secret"]) as old_client:
        assert (await old_client.get("/api/v1/balance")).status_code == 200

        async def refused() -> dict[str, Any] | None:
            response = await old_client.get("/api/v1/balance")
            return response.json() if response.status_code == 401 else None

        error = await wait_for(refused, timeout=30, interval=0.5, what="the old key expired")
        assert error["error"]["code"] == "api_key_expired"
    async with client_for(stack, new["secret"]) as new_client:
        assert (await new_client.get("/api/v1/balance")).status_code == 200
    again = await merchant.client.post(f"/api_keys/{old['id']}/rotate")
    assert again.status_code == 409 and again.json()["error"]["code"] == "api_key_not_rotatable"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "bad role", "role": "superuser"},
        {"name": "past", "expires_at": "2020-01-01T00:00:00Z"},
        {"name": "nul \u0000 inside"},
        {"name": ""},
        {"name": "x", "unknown": 1},
        {"role": "full"},
    ],
)
async def test_failed_creation_leaves_no_key_and_no_entry(
    merchant_factory, db: asyncpg.Connection, body: dict[str, Any]
) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/hook")
    before = await _written(db, merchant)
    response = await merchant.client.post("/api_keys", json=body)
    assert response.status_code == 400, response.text
    # A NUL is refused at the edge (`invalid_characters`), before the route sees it.
    codes = ("parameter_invalid", "parameter_missing", "invalid_characters")
    assert response.json()["error"]["code"] in codes
    assert await _written(db, merchant) == before


async def _written(db: asyncpg.Connection, merchant: Merchant) -> tuple[int, int]:
    merchant_id = uuid.UUID(merchant.id)
    keys = await db.fetchval(
        "SELECT count(*) FROM gateway.api_key WHERE merchant_id = $1", merchant_id
    )
    entries = await db.fetchval(
        "SELECT count(*) FROM gateway.audit_log WHERE merchant_id = $1", merchant_id
    )
    return keys, entries
