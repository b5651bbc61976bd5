"""The engine's round trips to PostgreSQL per payment, and the guards that let it skip the
reads: a write against a snapshot happens only while the attempt is still at its version."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

import asyncpg
import pytest
from fluxpay_testing.infra import Infra
from fluxpay_testing.statements import CountingPool, shapes

from fluxpay_common.db import create_pool, migrate
from fluxpay_common.messages import InitiatePayment
from provider_connectors.adapters import repository as repo
from provider_connectors.connectors.sandbox.connector import SandboxConnector
from provider_connectors.domain.model import Attempt, ProviderResult
from provider_connectors.service_layer.engine import UPDATE_SEQUENCE, Engine
from provider_connectors.service_layer.poller import Poller

SCHEMA = "connectors"
# A provider of its own: the module's sandbox worker (if any) never polls these attempts.
PROVIDER = "counted"


@pytest.fixture(scope="module")
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(infra.database_url, SCHEMA, min_size=1, max_size=4)
    await migrate(pool, SCHEMA, resources.files("provider_connectors") / "migrations")
    yield pool
    await pool.close()


@pytest.fixture
def counted(pool: asyncpg.Pool) -> CountingPool:
    return CountingPool(pool)


@pytest.fixture
def engine(counted: CountingPool) -> Engine:
    # No delay: the simulated customer's answer is due at once.
    return Engine(counted, SandboxConnector(delay_seconds=0), PROVIDER)  # type: ignore[arg-type]


@pytest.fixture
def initiate(make_initiate: Callable[..., InitiatePayment]) -> InitiatePayment:
    return make_initiate("+22997000001", provider=PROVIDER)


async def _attempt(pool: asyncpg.Pool, payment_id: uuid.UUID) -> tuple[Attempt, int]:
    async with pool.acquire() as conn:
        found = await repo.get_attempt(conn, payment_id)
    assert found is not None
    return found


async def _outbox_keys(pool: asyncpg.Pool, payment_id: uuid.UUID) -> list[str]:
    rows = await pool.fetch(
        "SELECT routing_key FROM outbox_message"
        " WHERE convert_from(body, 'UTF8')::jsonb ->> 'payment_id' = $1 ORDER BY id",
        str(payment_id),
    )
    return [r["routing_key"] for r in rows]


async def test_a_payment_is_started_and_settled_without_reading_its_attempt(
    pool: asyncpg.Pool, counted: CountingPool, engine: Engine, initiate: InitiatePayment
) -> None:
    """Claim and insert in one statement; each status applied by one guarded UPDATE (no
    read, no lock taken first) beside its outbox row; the poller's lease is the read."""
    await engine.initiate(initiate)
    assert shapes(await counted.taken()) == [
        "WITH claimed AS",
        "BEGIN",
        "UPDATE provider_attempt SET",
        "WITH added AS",
        "COMMIT",
    ]
    poller = Poller(engine)
    assert await poller.poll_once() == 1
    statements = await counted.taken()
    # The lease of due attempts and refunds (one each per poll, whatever the batch).
    assert shapes(statements[2:]) == [
        "BEGIN",
        "UPDATE provider_attempt SET",
        "WITH added AS",
        "COMMIT",
    ]
    assert not [s for s in statements if s.startswith("SELECT")]
    assert await _outbox_keys(pool, initiate.payment_id) == [
        f"provider.{PROVIDER}.processing",
        f"provider.{PROVIDER}.completed",
    ]
    attempt, _ = await _attempt(pool, initiate.payment_id)
    assert attempt.status == "completed" and attempt.data[UPDATE_SEQUENCE] == 2


async def test_a_redelivered_initiate_and_a_second_one_start_nothing(
    pool: asyncpg.Pool, engine: Engine, initiate: InitiatePayment
) -> None:
    await engine.initiate(initiate)
    await engine.initiate(initiate)
    other = initiate.model_copy(update={"message_id": uuid.uuid4()})
    await engine.initiate(other)
    assert await _outbox_keys(pool, initiate.payment_id) == [f"provider.{PROVIDER}.processing"]
    # The second command is recorded as handled all the same (a redelivery of it is skipped).
    handled = await pool.fetchval(
        "SELECT count(*) FROM inbox_message WHERE message_id = ANY($1::uuid[])",
        [initiate.message_id, other.message_id],
    )
    assert handled == 2


async def test_a_result_for_an_attempt_changed_since_it_was_read_applies_to_the_stored_one(
    pool: asyncpg.Pool, engine: Engine, initiate: InitiatePayment
) -> None:
    """Read `processing`, completed meanwhile: a failure decided from the old read must
    meet the stored `completed` (and be refused), not the snapshot."""
    await engine.initiate(initiate)
    snapshot, version = await _attempt(pool, initiate.payment_id)
    await engine.apply(snapshot, ProviderResult(status="completed", psp_reference="psp-1"))
    failed = ProviderResult(status="failed", failure_code="timeout")
    saved, update = await engine.apply(snapshot, failed, version)
    assert update is None
    assert saved.status == "completed" and saved.psp_reference == "psp-1"
    assert await _outbox_keys(pool, initiate.payment_id) == [
        f"provider.{PROVIDER}.processing",
        f"provider.{PROVIDER}.completed",
    ]


async def test_a_status_fetched_from_a_stale_snapshot_is_fetched_again(
    pool: asyncpg.Pool, engine: Engine, initiate: InitiatePayment
) -> None:
    await engine.initiate(initiate)
    stale = await _attempt(pool, initiate.payment_id)
    await engine.apply(stale[0], ProviderResult(status=None, data={"note": "meanwhile"}))
    fetched_from: list[dict[str, Any]] = []

    async def fetch(attempt: Attempt) -> ProviderResult:
        fetched_from.append(dict(attempt.data))
        return ProviderResult(status="completed")

    saved, update = await engine.refresh(initiate.payment_id, fetch, snapshot=stale)
    assert [d.get("note") for d in fetched_from] == [None, "meanwhile"]
    assert saved.status == "completed" and update is not None and update.sequence == 2


async def test_a_poll_without_news_is_one_statement(
    pool: asyncpg.Pool, counted: CountingPool, engine: Engine, initiate: InitiatePayment
) -> None:
    await engine.initiate(initiate)
    snapshot = await _attempt(pool, initiate.payment_id)
    await counted.taken()

    async def no_news(attempt: Attempt) -> ProviderResult:
        return ProviderResult(status=None, next_poll_at=attempt.next_poll_at)

    saved, update = await engine.refresh(initiate.payment_id, no_news, snapshot=snapshot)
    assert update is None and saved.status == "processing"
    assert shapes(await counted.taken()) == ["UPDATE provider_attempt SET"]
