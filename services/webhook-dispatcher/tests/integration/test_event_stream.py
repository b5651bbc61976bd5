"""`webhooks.stream_events` with a real database: a merchant's test events since a time,
oldest first, each body exactly as stored and signed now with the merchant's secrets."""

from __future__ import annotations

import importlib.resources
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from fluxpay_testing.infra import Infra

from fluxpay_common import signing
from fluxpay_common.db import create_pool, migrate
from fluxpay_common.ids import utcnow
from fluxpay_common.messages import QueryReply, WebhooksCommand
from webhook_dispatcher.service_layer import handlers
from webhook_dispatcher.service_layer.merchant_commands import answer

from .conftest import BOX

CONFIG = handlers.HandlerConfig(endpoint_wait=timedelta(hours=1))
URL = "http://127.0.0.1:9/hooks"


@pytest.fixture(scope="module")
async def stream_pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(infra.database_url, "webhooks", min_size=1, max_size=4)
    await migrate(pool, "webhooks", importlib.resources.files("webhook_dispatcher") / "migrations")
    yield pool
    await pool.close()


def stream(merchant_id: uuid.UUID, environment: str = "test", **fields: Any) -> WebhooksCommand:
    fields.setdefault("since", utcnow() - timedelta(minutes=1))
    return WebhooksCommand(
        type="webhooks.stream_events",
        merchant_id=merchant_id,
        environment=environment,  # type: ignore[arg-type]
        **fields,
    )


async def with_secret(pool: asyncpg.Pool, events: Any, merchant_id: uuid.UUID) -> None:
    await handlers.handle(pool, events.endpoint_changed(merchant_id, URL, ["whsec_a"]), CONFIG)


async def ask(pool: asyncpg.Pool, command: WebhooksCommand) -> QueryReply:
    return await answer(pool, command, BOX)


async def test_each_event_comes_with_its_stored_bytes_signed_now(stream_pool, events) -> None:
    merchant_id = uuid.uuid4()
    await with_secret(stream_pool, events, merchant_id)
    first, second = events.payment_completed(merchant_id), events.payment_completed(merchant_id)
    live = events.payment_completed(merchant_id, environment="live")
    for message in (first, second, live):
        await handlers.handle(stream_pool, message, CONFIG)

    reply = await ask(stream_pool, stream(merchant_id))
    assert reply.error is None, reply.error
    items = reply.data["data"]
    assert [i["id"] for i in items] == [str(first.message_id), str(second.message_id)]
    stored = await stream_pool.fetchval("SELECT body FROM event WHERE id = $1", items[0]["id"])
    assert items[0]["body"].encode() == bytes(stored)
    assert signing.verify("whsec_a", items[0]["signature"], bytes(stored))
    assert not signing.verify("whsec_other", items[0]["signature"], bytes(stored))
    assert reply.data["has_more"] is False

    later = await ask(stream_pool, stream(merchant_id, since=utcnow() + timedelta(seconds=5)))
    assert later.data["data"] == []


async def test_a_full_page_says_more_follow(stream_pool, events) -> None:
    merchant_id = uuid.uuid4()
    await with_secret(stream_pool, events, merchant_id)
    for _ in range(3):
        await handlers.handle(stream_pool, events.payment_completed(merchant_id), CONFIG)
    reply = await ask(stream_pool, stream(merchant_id, limit=2))
    assert len(reply.data["data"]) == 2 and reply.data["has_more"] is True


async def test_during_a_rotation_both_secrets_sign(stream_pool, events) -> None:
    merchant_id = uuid.uuid4()
    overlap = utcnow() + timedelta(hours=1)
    changed = events.endpoint_changed(merchant_id, None, ["whsec_new", "whsec_old"], overlap)
    await handlers.handle(stream_pool, changed, CONFIG)
    await handlers.handle(stream_pool, events.payment_completed(merchant_id), CONFIG)
    [item] = (await ask(stream_pool, stream(merchant_id))).data["data"]
    body = item["body"].encode()
    assert signing.verify("whsec_new", item["signature"], body)
    assert signing.verify("whsec_old", item["signature"], body)


async def test_live_keys_and_merchants_without_a_secret_are_refused(stream_pool) -> None:
    live = await ask(stream_pool, stream(uuid.uuid4(), environment="live"))
    assert live.error is not None and (live.error.status, live.error.code) == (
        403,
        "test_key_required",
    )
    unknown = await ask(stream_pool, stream(uuid.uuid4()))
    assert unknown.error is not None and unknown.error.code == "webhook_endpoint_not_found"
