"""The orchestrator's schema on the run's database, and handlers' dependencies over it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

import asyncpg
import pytest
from fluxpay_testing.infra import Infra
from fluxpay_testing.statements import CountingPool

from fluxpay_common.db import create_pool, migrate
from fluxpay_common.fees import FeeSchedule
from fluxpay_common.messages import Message, ReserveRefund
from fluxpay_common.outbox import OutboxRelay
from payment_orchestrator.adapters.postgres import postgres_unit_of_work
from payment_orchestrator.service_layer.handlers import Dependencies, Policy
from payment_orchestrator.service_layer.ports import OpenUnitOfWork

from .recording import RecordingBroker

SCHEMA = "orchestrator"


@pytest.fixture(scope="module")
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(infra.database_url, SCHEMA)
    await migrate(pool, SCHEMA, resources.files("payment_orchestrator") / "migrations")
    yield pool
    await pool.close()


async def _no_connector(provider: str, request: Message) -> Any:
    raise AssertionError("no synchronous connector call in these flows")


async def _ledger_holds_everything(request: ReserveRefund) -> tuple[bool, int]:
    return True, 10**12


@pytest.fixture
def dependencies() -> Callable[[OpenUnitOfWork], Dependencies]:
    """Handlers' dependencies over a unit of work: MTN Benin routed, no connector call, a
    ledger that holds every refund."""

    def over(open_uow: OpenUnitOfWork) -> Dependencies:
        return Dependencies(
            open_uow=open_uow,
            call_connector=_no_connector,
            reserve_refund=_ledger_holds_everything,
            policy=Policy({"BJ:mtn": "mtn_momo"}, "https://pay.test/checkout", FeeSchedule()),
        )

    return over


@pytest.fixture
def deps(
    pool: asyncpg.Pool, dependencies: Callable[[OpenUnitOfWork], Dependencies]
) -> Dependencies:
    """The handlers over the module's database."""
    return dependencies(postgres_unit_of_work(pool))


@pytest.fixture
def counted(pool: asyncpg.Pool) -> CountingPool:
    return CountingPool(pool)


@pytest.fixture
def counted_deps(
    counted: CountingPool,
    relay: tuple[OutboxRelay, RecordingBroker],
    dependencies: Callable[[OpenUnitOfWork], Dependencies],
) -> Dependencies:
    """The handlers over the counting pool, their outbox rows handed to the recording relay."""
    return dependencies(postgres_unit_of_work(counted, relay[0]))  # type: ignore[arg-type]


@pytest.fixture
async def relay(pool: asyncpg.Pool) -> AsyncIterator[tuple[OutboxRelay, RecordingBroker]]:
    broker = RecordingBroker()
    # No sweep within a test: what the broker gets was handed over after a commit.
    relay = OutboxRelay(pool, broker, idle_poll_seconds=60, direct_grace_seconds=60)  # type: ignore[arg-type]
    task = asyncio.create_task(relay.run())
    yield relay, broker
    await relay.close()
    await task
