"""Events taken in batches keep the one-by-one path's guarantees: one event and one delivery
per message however often the batch is redelivered, and an endpoint change in the middle of
a batch seen by the events after it."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.resources
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from fluxpay_testing.infra import Infra

from fluxpay_common.db import create_pool, migrate
from webhook_dispatcher.adapters import repository
from webhook_dispatcher.domain.delivery import Skip, Target, Wait, resolve_target
from webhook_dispatcher.domain.events import event_body
from webhook_dispatcher.service_layer import handlers

from .conftest import BOX

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


class _FirstAttempts:
    """The dispatcher's door, recording what it is handed."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.jobs: list = []
        self.held_back: set[uuid.UUID] = set()

    @contextlib.contextmanager
    def slots(self):
        yield self.free

    async def start(self, jobs, held_back) -> None:
        self.jobs.extend(jobs)
        self.held_back |= held_back


async def test_new_deliveries_are_leased_up_to_the_merchants_free_slots_and_handed_over(
    pool, events
) -> None:
    merchant = uuid.uuid4()
    await handlers.handle_batch(
        pool, [events.endpoint_changed(merchant, "https://shop.example/hooks", ["whsec_a"])], CONFIG
    )
    # One send of this merchant already in flight elsewhere: 3 of its 4 slots are free.
    busy = events.payment_completed(merchant)
    await handlers.handle_batch(pool, [busy], CONFIG)
    await pool.execute(
        "UPDATE delivery SET locked_until = now() + interval '1 minute',"
        " claim_token = gen_random_uuid() WHERE event_id = $1",
        str(busy.message_id),
    )
    door = _FirstAttempts(free=10)
    config = dataclasses.replace(CONFIG, first_attempts=door, endpoint_concurrency=4)
    batch = [events.payment_completed(merchant) for _ in range(5)]

    await handlers.handle_batch(pool, batch, config)

    assert [job.event_id for job in door.jobs] == [str(m.message_id) for m in batch[:3]]
    assert door.held_back == {merchant}
    job = door.jobs[0]
    assert job.attempt_count == 0 and job.body == event_body(batch[0])
    assert job.endpoint is not None and job.endpoint.url == "https://shop.example/hooks"
    assert [BOX.open(s.sealed) for s in job.endpoint.secrets] == ["whsec_a"]
    rows = await pool.fetch(
        "SELECT event_id, claim_token, locked_until > now() AS leased, next_attempt_at <= now()"
        " AS due FROM delivery WHERE event_id = ANY($1::text[])",
        [str(m.message_id) for m in batch],
    )
    leased = {r["event_id"]: r for r in rows if r["leased"]}
    assert {j.event_id: j.claim_token for j in door.jobs} == {
        k: r["claim_token"] for k, r in leased.items()
    }
    assert all(r["due"] and r["claim_token"] is None for r in rows if not r["leased"]), (
        "the rest are left due for the claim loop"
    )


async def test_no_more_than_the_free_sending_slots_are_leased(pool, events) -> None:
    merchant = uuid.uuid4()
    await handlers.handle_batch(
        pool, [events.endpoint_changed(merchant, "https://shop.example/hooks", ["whsec_a"])], CONFIG
    )
    door = _FirstAttempts(free=1)
    config = dataclasses.replace(CONFIG, first_attempts=door)
    batch = [events.payment_completed(merchant) for _ in range(2)]
    await handlers.handle_batch(pool, batch, config)
    assert len(door.jobs) == 1 and door.held_back == {merchant}


@pytest.mark.parametrize(
    ("url", "secrets", "disabled", "callback", "endpoint_wait"),
    [
        (None, None, False, None, timedelta(0)),  # no endpoint record, no wait
        (None, None, False, None, timedelta(hours=1)),  # no endpoint record yet: wait
        ("https://shop.example/hooks", [], False, None, timedelta(0)),  # no secret
        (None, ["whsec_a"], False, None, timedelta(0)),  # no URL
        (None, ["whsec_a"], False, "https://cb.example/x", timedelta(0)),  # callback only
        ("https://shop.example/hooks", ["whsec_a"], True, None, timedelta(0)),  # disabled
        ("https://shop.example/hooks", ["whsec_a"], True, "https://cb.example/x", timedelta(0)),
        ("https://shop.example/hooks", ["whsec_a"], False, None, timedelta(0)),
    ],
)
async def test_a_batch_routes_each_delivery_as_resolve_target_does(
    pool, events, url, secrets, disabled, callback, endpoint_wait
) -> None:
    merchant = uuid.uuid4()
    if secrets is not None:
        await handlers.handle_batch(pool, [events.endpoint_changed(merchant, url, secrets)], CONFIG)
    if disabled:
        await pool.execute(
            "UPDATE endpoint SET disabled_at = now() WHERE merchant_id = $1", merchant
        )
    endpoint = await repository.load_endpoint(pool, merchant, "test")
    door = _FirstAttempts(free=10)
    config = handlers.HandlerConfig(endpoint_wait=endpoint_wait, first_attempts=door)
    message = events.payment_completed(merchant, callback_url=callback)

    await handlers.handle_batch(pool, [message], config)

    row = await pool.fetchrow(
        "SELECT status, last_error, completed_at IS NOT NULL AS done, claim_token"
        " FROM delivery WHERE event_id = $1",
        str(message.message_id),
    )
    match resolve_target(callback, endpoint, timedelta(0), endpoint_wait):
        case Skip(status=status, reason=reason):
            assert (row["status"], row["last_error"], row["done"]) == (status, reason, True)
            assert door.jobs == [] and row["claim_token"] is None
        case Wait():
            assert (row["status"], row["claim_token"], door.jobs) == ("pending", None, [])
        case Target():
            assert row["status"] == "pending" and not row["done"]
            [job] = door.jobs
            assert job.claim_token == row["claim_token"]
