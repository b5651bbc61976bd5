"""Successful attempts finishing together share a statement, with the one-by-one path's
guarantees: every attempt logged, a delivery marked succeeded only under its own lease."""

from __future__ import annotations

import asyncio
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
from fluxpay_common.ids import utcnow
from webhook_dispatcher.adapters import delivery_store as store
from webhook_dispatcher.domain.delivery import AttemptOutcome, Target
from webhook_dispatcher.service_layer import handlers
from webhook_dispatcher.service_layer.success_log import SuccessLog

URL = "https://shop.example/hooks"


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(infra.database_url, "webhooks")
    await migrate(pool, "webhooks", importlib.resources.files("webhook_dispatcher") / "migrations")
    yield pool
    await pool.close()


class _Door:
    def __init__(self) -> None:
        self.jobs: list[store.ClaimedDelivery] = []

    @contextlib.contextmanager
    def slots(self):
        yield 10

    async def start(self, jobs, held_back) -> None:
        self.jobs.extend(jobs)


async def test_successes_finishing_together_are_recorded_together_each_under_its_lease(
    pool, events, monkeypatch
) -> None:
    merchant = uuid.uuid4()
    config = handlers.HandlerConfig(endpoint_wait=timedelta(0))
    await handlers.handle_batch(pool, [events.endpoint_changed(merchant, URL, ["whsec"])], config)
    await pool.execute("UPDATE endpoint SET failing_since = now() WHERE merchant_id = $1", merchant)
    door = _Door()
    leasing = dataclasses.replace(config, first_attempts=door)
    await handlers.handle_batch(
        pool, [events.payment_completed(merchant) for _ in range(3)], leasing
    )
    first, second, taken_over = door.jobs
    taken_over = dataclasses.replace(taken_over, claim_token=uuid.uuid4())  # lease lost
    statements = 0
    record_successes = store.record_successes

    async def counted(*args):
        nonlocal statements
        statements += 1
        return await record_successes(*args)

    monkeypatch.setattr(store, "record_successes", counted)
    log = SuccessLog(pool)
    outcome = AttemptOutcome(200, duration_ms=3, response_excerpt="ok")

    results = await asyncio.gather(
        *(
            log.record(store.Success(job, Target(URL, True), URL, utcnow(), outcome))
            for job in (first, second, taken_over)
        )
    )

    assert results == [True, True, False]
    assert statements == 2, "the first alone, the two finishing during its write together"
    rows = await pool.fetch(
        "SELECT d.id, d.status, d.attempt_count, d.claim_token, d.last_status_code,"
        " (SELECT count(*) FROM delivery_attempt a WHERE a.delivery_id = d.id"
        "  AND a.succeeded AND a.status_code = 200) AS logged"
        " FROM delivery d WHERE d.merchant_id = $1",
        merchant,
    )
    by_id = {r["id"]: r for r in rows}
    for job in (first, second):
        row = by_id[job.id]
        assert (row["status"], row["attempt_count"], row["claim_token"]) == ("succeeded", 1, None)
        assert (row["last_status_code"], row["logged"]) == (200, 1)
    lost = by_id[taken_over.id]
    assert (lost["status"], lost["logged"]) == ("pending", 1), "logged, state left to its owner"
    failing = await pool.fetchval(
        "SELECT failing_since FROM endpoint WHERE merchant_id = $1", merchant
    )
    assert failing is None, "a success ends the endpoint's failure streak"
