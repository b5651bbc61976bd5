"""Events taken in batches keep the one-by-one path's guarantees: one event and one delivery
per message however often the batch is redelivered, and an endpoint change in the middle of
a batch seen by the events after it."""

from __future__ import annotations

import importlib.resources
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from fluxpay_testing.infra import Infra

from fluxpay_common.db import create_pool, migrate
from webhook_dispatcher.service_layer import handlers

CONFIG = handlers.HandlerConfig(endpoint_wait=timedelta(0))


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(infra.database_url, "webhooks")
    await migrate(pool, "webhooks", importlib.resources.files("webhook_dispatcher") / "migrations")
    yield pool
    await pool.close()


async def _deliveries(pool: asyncpg.Pool, merchant_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT d.event_id, d.status, e.body IS NOT NULL AS stored FROM delivery d"
        " JOIN event e ON e.id = d.event_id WHERE d.merchant_id = $1",
        merchant_id,
    )


async def test_a_redelivered_batch_and_a_duplicate_in_it_change_nothing_twice(pool, events) -> None:
    merchant = uuid.uuid4()
    change = events.endpoint_changed(merchant, "https://shop.example/hooks", ["whsec_a"])
    await handlers.handle_batch(pool, [change], CONFIG)
    first, second = (events.payment_completed(merchant) for _ in range(2))

    await handlers.handle_batch(pool, [first, second, first], CONFIG)
    await handlers.handle_batch(pool, [second, first], CONFIG)  # the batch came back

    rows = await _deliveries(pool, merchant)
    assert sorted(r["event_id"] for r in rows) == sorted(str(m.message_id) for m in (first, second))
    assert {r["status"] for r in rows} == {"pending"}
    claims = await pool.fetchval(
        "SELECT count(*) FROM inbox_message WHERE message_id = ANY($1::uuid[])",
        [first.message_id, second.message_id],
    )
    assert claims == 2


async def test_an_endpoint_change_inside_a_batch_applies_to_the_events_after_it(
    pool, events
) -> None:
    merchant = uuid.uuid4()
    before = events.payment_completed(merchant)
    change = events.endpoint_changed(merchant, "https://shop.example/hooks", ["whsec_a"])
    after = events.payment_completed(merchant)

    await handlers.handle_batch(pool, [before, change, after], CONFIG)

    status = {r["event_id"]: r["status"] for r in await _deliveries(pool, merchant)}
    # No endpoint yet (and no wait configured) for the first; the second has one.
    assert status == {str(before.message_id): "no_endpoint", str(after.message_id): "pending"}
