from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from fluxpay_testing.infra import Infra

from tests.support.receiver import WebhookReceiver
from tests.support.stack import Stack


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@dataclass
class Merchant:
    id: str
    test_key: str
    live_key: str
    # The signing secret of the client's environment (test and live each have their own).
    webhook_secret: str
    client: httpx.AsyncClient
    webhook_secrets: dict[str, str]


@pytest.fixture
async def merchant_factory(
    stack: Stack,
) -> AsyncIterator[Callable[[str], Merchant]]:
    clients: list[httpx.AsyncClient] = []

    def make(webhook_url: str, environment: str = "test") -> Merchant:
        created = stack.admin("create-merchant", "--name", "E2E shop", "--webhook-url", webhook_url)
        keys, secrets = created["api_keys"], created["webhook_secrets"]
        assert isinstance(keys, dict) and isinstance(secrets, dict)
        key = keys[environment]
        client = httpx.AsyncClient(
            base_url=f"{stack.base_url}/api/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=15,
        )
        clients.append(client)
        return Merchant(
            str(created["merchant_id"]),
            str(keys["test"]),
            str(keys["live"]),
            str(secrets[environment]),
            client,
            {env: str(secret) for env, secret in secrets.items()},
        )

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def db(infra: Infra) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(infra.database_url)
    yield conn
    await conn.close()


def payment_body(phone: str, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "reference": f"order-{uuid.uuid4()}",
        "amount": 3000,
        "currency": "XOF",
        "country": "BJ",
        "mode": "direct",
        "customer": {"phone": phone},
        "operator": "mtn",
        "description": "Commande e2e",
    }
    body.update(overrides)
    return body


def idempotency() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}
