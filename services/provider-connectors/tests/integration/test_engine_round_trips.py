"""The engine's round trips to PostgreSQL per payment, and the guards that let it skip the
reads: a write against a snapshot happens only while the attempt is still at its version.
A sandbox payment's result is one statement (the guarded UPDATE and its update's outbox
row), handed to the relay once it returned; a stale one writes and publishes nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from importlib import resources
from typing import Any

import asyncpg
import pytest
from fluxpay_testing.infra import Infra, wait_for
from fluxpay_testing.statements import CountingPool, shapes

from fluxpay_common.db import create_pool, migrate
from fluxpay_common.messages import InitiatePayment, ProviderPaymentUpdate, provider_update_id
from fluxpay_common.outbox import OutboxRelay, OutboxRow
from fluxpay_common.topology import PROVIDER as PROVIDER_EXCHANGE
from provider_connectors.adapters import repository as repo
from provider_connectors.connectors.sandbox.connector import SandboxConnector
from provider_connectors.domain.model import Attempt, ProviderResult
from provider_connectors.service_layer.engine import UPDATE_SEQUENCE, Engine
from provider_connectors.service_layer.poller import Poller
from provider_connectors.service_layer.updates import payment_update

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


class _RecordingBroker:
    def __init__(self) -> None:
        self.published: dict[uuid.UUID, tuple[str, bytes]] = {}

    async def publish(self, body: bytes, **kwargs: Any) -> None:
        self.published[uuid.UUID(kwargs["message_id"])] = (kwargs["routing_key"], body)


class _WatchedRelay(OutboxRelay):
    """Records what is handed over, and whether its rows were committed by then."""

    def __init__(self, pool: asyncpg.Pool, broker: _RecordingBroker) -> None:
        # No sweep within a test: what the broker gets was handed over after a statement.
        super().__init__(pool, broker, idle_poll_seconds=60, direct_grace_seconds=60)  # type: ignore[arg-type]
        self.handed: list[OutboxRow] = []

    def hand_over(self, rows: Sequence[OutboxRow]) -> None:
        self.handed.extend(rows)
        super().hand_over(rows)


@pytest.fixture
async def relay(pool: asyncpg.Pool) -> AsyncIterator[_WatchedRelay]:
    relay = _WatchedRelay(pool, _RecordingBroker())
    task = asyncio.create_task(relay.run())
    yield relay
    await relay.close()
    await task


@pytest.fixture
async def engine(
    counted: CountingPool, relay: _WatchedRelay, make_initiate: Callable[..., InitiatePayment]
) -> Engine:
    # No delay: the simulated customer's answer is due at once.
    engine = Engine(counted, SandboxConnector(delay_seconds=0), PROVIDER, relay=relay)  # type: ignore[arg-type]
    # asyncpg looks a statement's new types up once per connection: not counted.
    warm_up = make_initiate("+22997000001", provider=PROVIDER)
    await engine.initiate(warm_up)
    await engine.refresh(warm_up.payment_id, engine.current_status)
    await counted.taken()
    relay.handed.clear()
    return engine


def _broker(relay: OutboxRelay) -> _RecordingBroker:
    return relay._broker  # type: ignore[return-value]


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


async def _sent(counted: CountingPool) -> list[str]:
    """The statements the code sent, without asyncpg's own type look-ups (once per
    connection for a statement's new types, whichever connection the pool gives)."""
    return [
        s
        for s in shapes(await counted.taken())
        if not s.startswith(("SELECT current_setting('jit')", "WITH RECURSIVE typeinfo_tree"))
    ]


async def _stored_updates(pool: asyncpg.Pool, payment_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT id, message_id, routing_key, body, direct FROM outbox_message"
        " WHERE convert_from(body, 'UTF8')::jsonb ->> 'payment_id' = $1 ORDER BY id",
        str(payment_id),
    )


async def test_a_sandbox_payment_s_results_are_one_statement_each(
    pool: asyncpg.Pool,
    counted: CountingPool,
    engine: Engine,
    relay: _WatchedRelay,
    initiate: InitiatePayment,
) -> None:
    """Claim and insert in one statement; each status applied by one guarded UPDATE that
    inserts its update's outbox row (no read, no lock taken first, no BEGIN/COMMIT); the
    poller's lease is the read."""
    await engine.initiate(initiate)
    assert await _sent(counted) == ["WITH claimed AS", "WITH saved AS"]
    poller = Poller(engine)
    assert await poller.poll_once() == 1
    statements = await _sent(counted)
    # The lease of due attempts and refunds (one each per poll, whatever the batch).
    assert statements[:2] == ["UPDATE provider_attempt SET", "UPDATE provider_refund SET"]
    assert statements[2:] == ["WITH saved AS"]
    assert await _outbox_keys(pool, initiate.payment_id) == [
        f"provider.{PROVIDER}.processing",
        f"provider.{PROVIDER}.completed",
    ]
    attempt, _ = await _attempt(pool, initiate.payment_id)
    assert attempt.status == "completed" and attempt.data[UPDATE_SEQUENCE] == 2


async def test_each_update_is_handed_to_the_relay_once_its_statement_returned(
    pool: asyncpg.Pool, engine: Engine, relay: _WatchedRelay, initiate: InitiatePayment
) -> None:
    """The rows handed over are the committed ones (their ids, marked direct), in order,
    published without the sweep, and each reads as the attempt its statement stored."""
    await engine.initiate(initiate)
    await engine.refresh(initiate.payment_id, engine.current_status)
    stored = await _stored_updates(pool, initiate.payment_id)
    ids = [provider_update_id(initiate.payment_id, n) for n in (1, 2)]
    assert [r["message_id"] for r in stored] == ids and all(r["direct"] for r in stored)
    assert [(row.id, row.message_id) for row in relay.handed] == [
        (r["id"], r["message_id"]) for r in stored
    ]
    broker = _broker(relay)

    async def published() -> bool:
        return all(i in broker.published for i in ids)

    await wait_for(published, timeout=10, what="both updates published by the relay")
    last = ProviderPaymentUpdate.model_validate_json(broker.published[ids[1]][1])
    attempt, _ = await _attempt(pool, initiate.payment_id)
    assert last.sequence == attempt.data[UPDATE_SEQUENCE] == 2
    expected = payment_update(attempt, sequence=2)
    assert last.model_dump(exclude={"occurred_at"}) == expected.model_dump(exclude={"occurred_at"})
    assert broker.published[ids[1]][0] == f"provider.{PROVIDER}.completed"
    await relay.flush()

    async def marked() -> bool:
        return bool(
            await pool.fetchval(
                "SELECT bool_and(published_at IS NOT NULL) FROM outbox_message"
                " WHERE message_id = ANY($1::uuid[])",
                ids,
            )
        )

    await wait_for(marked, timeout=10, what="the handed-over rows marked published")


async def test_a_result_for_a_stale_version_writes_and_publishes_nothing(
    pool: asyncpg.Pool,
    counted: CountingPool,
    engine: Engine,
    relay: _WatchedRelay,
    initiate: InitiatePayment,
) -> None:
    await engine.initiate(initiate)
    snapshot, version = await _attempt(pool, initiate.payment_id)
    await engine.apply(snapshot, ProviderResult(status=None, data={"note": "meanwhile"}))
    await counted.taken()
    relay.handed.clear()
    done = ProviderResult(status="completed", psp_reference="psp-stale")
    assert await engine.apply_if_unchanged(snapshot, version, done) is None
    assert await _sent(counted) == ["WITH saved AS"]
    assert relay.handed == []
    assert await _outbox_keys(pool, initiate.payment_id) == [f"provider.{PROVIDER}.processing"]
    attempt, now_at = await _attempt(pool, initiate.payment_id)
    assert attempt.status == "processing" and attempt.psp_reference != "psp-stale"
    assert attempt.data[UPDATE_SEQUENCE] == 1 and now_at == version + 1
    await relay.flush()
    assert provider_update_id(initiate.payment_id, 2) not in _broker(relay).published


async def test_an_update_numbered_after_another_sequence_than_the_stored_one_is_not_written(
    pool: asyncpg.Pool, relay: _WatchedRelay, initiate: InitiatePayment, engine: Engine
) -> None:
    """The second guard: the sequence a message was numbered after must be the stored one,
    or neither the attempt nor the message is written (even at the right version)."""
    await engine.initiate(initiate)
    attempt, version = await _attempt(pool, initiate.payment_id)
    update = payment_update(attempt, sequence=5)
    key = f"provider.{PROVIDER}.completed"
    announce = repo.Announcement([(PROVIDER_EXCHANGE, key, update)], 4, relay)
    async with pool.acquire() as conn:
        saved = await repo.save_attempt(
            conn,
            initiate.payment_id,
            status="completed",
            psp_reference="psp-5",
            otp_attempts=0,
            next_poll_at=None,
            data_patch={UPDATE_SEQUENCE: 5},
            version=version,
            announce=announce,
        )
    assert saved is None
    assert await _outbox_keys(pool, initiate.payment_id) == [f"provider.{PROVIDER}.processing"]
    assert (await _attempt(pool, initiate.payment_id))[1] == version


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
    assert await _sent(counted) == ["UPDATE provider_attempt SET"]
