"""Reconciling a day of the orchestrator (its real schema, migrated here) with the books.

The orchestrator's rows are written as its service writes them, and its side is asked
through its door: its own command handler answers `SettledMovementsQuery` (in process for
`reconcile_day`, over RabbitMQ for the CLI). The books are written by the ledger's own
handler from the events the orchestrator would have published for those rows. Each test
uses its own provider name, so tests sharing the database never see each other.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fluxpay_testing.infra import Infra
from fluxpay_testing.ledger import payment_event, payment_view, refund_event

from fluxpay_common.consumer import subscribe
from fluxpay_common.db import create_pool, migrate
from fluxpay_common.messages import (
    Message,
    QueryReply,
    SettledMovement,
    SettledMovementsQuery,
    orchestrator_command_adapter,
)
from fluxpay_common.runtime import make_broker, make_consumers
from fluxpay_common.settings import ServiceSettings
from fluxpay_common.topology import ORCHESTRATOR_COMMANDS, declare_topology
from ledger.adapters.orchestrator import OrchestratorDoor
from ledger.adapters.postgres import postgres_books
from ledger.domain.fees import FeeSchedule
from ledger.entrypoints.main import SCHEMA, migrations
from ledger.entrypoints.reconcile import run_reconcile
from ledger.service_layer.handlers import handle_event
from ledger.service_layer.reconciliation import DayReport, reconcile_day
from payment_orchestrator.adapters.postgres import postgres_unit_of_work
from payment_orchestrator.service_layer.handlers import Dependencies, Policy, handle_command

DAY = date(2026, 3, 14)
NOON = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
FEES = FeeSchedule()
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(infra.database_url, SCHEMA)
    await migrate(pool, SCHEMA, migrations())
    await migrate(pool, "orchestrator", resources.files("payment_orchestrator") / "migrations")
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def orchestrator_deps(infra: Infra, pool: asyncpg.Pool) -> AsyncIterator[Dependencies]:
    """The orchestrator's handlers over its schema: all reconciliation needs of it."""
    own = await create_pool(infra.database_url, "orchestrator")

    async def no_connector(provider: str, request: Message) -> Any:
        raise AssertionError("reconciliation calls no connector")

    yield Dependencies(
        open_uow=postgres_unit_of_work(own),
        call_connector=no_connector,
        reserve_refund=None,
        policy=Policy(routes={}, checkout_base_url="", fees=FEES),
    )
    await own.close()


class InProcessDoor:
    """The orchestrator's door without the broker: its handler's answer, as the RPC brings it."""

    def __init__(self, deps: Dependencies) -> None:
        self._deps = deps

    async def _ask(self, query: SettledMovementsQuery) -> list[SettledMovement]:
        reply = await handle_command(query, self._deps)
        assert isinstance(reply, QueryReply) and reply.error is None
        wire = QueryReply.model_validate_json(reply.model_dump_json())
        return [SettledMovement.model_validate(m) for m in wire.data["movements"]]

    expected_movements = OrchestratorDoor.expected_movements
    settled = OrchestratorDoor.settled


@pytest.fixture(scope="module")
async def orchestrator_answering(
    infra: Infra, orchestrator_deps: Dependencies
) -> AsyncIterator[None]:
    """The orchestrator's door over RabbitMQ (its command queue), for the CLI."""
    settings = ServiceSettings(RABBITMQ_URL=infra.rabbitmq_url, DATABASE_URL=infra.database_url)
    broker = make_broker(settings)

    async def answer(command: Message, _: Any) -> Any:
        return await handle_command(command, orchestrator_deps)

    consumers = make_consumers(settings)
    subscribe(
        consumers,
        ORCHESTRATOR_COMMANDS,
        orchestrator_command_adapter,
        answer,
        delivery_limit=5,
        retry_seconds=0.1,
    )
    await broker.connect()
    await declare_topology(broker, settings.delivery_limit)
    await broker.start()
    await consumers.start()
    yield
    await consumers.stop()
    await broker.stop()


@dataclass
class Day:
    """One provider's day, written to both sides as the running platform would."""

    pool: asyncpg.Pool
    door: InProcessDoor
    provider: str
    merchant: uuid.UUID
    environment: str = "test"

    async def payment(
        self,
        amount: int = 3001,
        *,
        at: datetime = NOON,
        status: str = "completed",
        psp_fee_minor: int | None = None,
        booked: bool = True,
        booked_amount: int | None = None,
    ) -> uuid.UUID:
        """A payment the orchestrator completed at `at` (unless `status` says otherwise)."""
        payment_id = uuid.uuid4()
        await self.pool.execute(
            "INSERT INTO orchestrator.payment (id, merchant_id, environment, reference,"
            " idempotency_key, status, amount, currency, country, mode, operator, provider,"
            " fee_minor, expires_at, completed_at, refunded_amount)"
            " VALUES ($1, $2, $3, $4, $4, $5, $6, 'XOF', 'BJ', 'direct', 'mtn', $7, $8, $9,"
            " $10, $11)",
            payment_id,
            self.merchant,
            self.environment,
            f"order-{payment_id}",
            status,
            amount,
            self.provider,
            psp_fee_minor,
            at + timedelta(minutes=15),
            at if status in ("completed", "refunded") else None,
            amount if status == "refunded" else 0,
        )
        if booked:
            await self.book_payment(payment_id, booked_amount or amount, at, psp_fee_minor)
        return payment_id

    async def book_payment(
        self, payment_id: uuid.UUID, amount: int, at: datetime, psp_fee_minor: int | None = None
    ) -> None:
        view = payment_view(
            payment_id=payment_id,
            amount=amount,
            environment=self.environment,  # type: ignore[arg-type]
            completed_at=at,
        )
        event = payment_event(view, self.merchant, provider=self.provider, fee_minor=psp_fee_minor)
        assert await handle_event(event, postgres_books(self.pool), FEES) is not None

    async def refund(
        self,
        payment_id: uuid.UUID,
        amount: int,
        *,
        at: datetime = NOON,
        status: str = "completed",
        booked_at: datetime | None = None,
        booked: bool = True,
    ) -> uuid.UUID:
        """A refund the orchestrator settled at `at`, its event dated `booked_at` (or `at`)."""
        refund_id = uuid.uuid4()
        await self.pool.execute(
            "INSERT INTO orchestrator.refund (id, payment_id, merchant_id, environment, status,"
            " amount, currency, created_at, completed_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, 'XOF', $7, $8)",
            refund_id,
            payment_id,
            self.merchant,
            self.environment,
            status,
            amount,
            at,
            None if status == "pending" else at,
        )
        if booked:
            view = payment_view(payment_id=payment_id, environment=self.environment)  # type: ignore[arg-type]
            event = refund_event(
                view,
                self.merchant,
                amount,
                provider=self.provider,
                refund_id=refund_id,
                occurred_at=booked_at or at,
            )
            assert await handle_event(event, postgres_books(self.pool), FEES) is not None
        return refund_id

    async def reconcile(self, day: date = DAY, **scope: object) -> DayReport:
        async with self.pool.acquire() as conn:
            return await reconcile_day(conn, self.door, day, self.provider, **scope)  # type: ignore[arg-type]


@pytest.fixture
def make_day(pool: asyncpg.Pool, orchestrator_deps: Dependencies) -> Any:
    def make(merchant: uuid.UUID | None = None) -> Day:
        door = InProcessDoor(orchestrator_deps)
        return Day(pool, door, f"psp_{uuid.uuid4().hex[:8]}", merchant or uuid.uuid4())

    return make


def _found(report: DayReport) -> set[tuple[str, uuid.UUID]]:
    return {(d.kind, d.key[1]) for d in report.differences}


async def test_a_day_where_books_and_orchestrator_agree_is_clean(make_day: Any) -> None:
    day = make_day()
    kept = await day.payment(3001, psp_fee_minor=3_001)
    partly = await day.payment(5001)
    whole = await day.payment(1001, status="refunded")
    await day.refund(partly, 2000)
    await day.refund(whole, 1001)
    # Nothing moved: not expected, not booked.
    await day.payment(4001, status="failed", booked=False)
    await day.refund(kept, 500, status="pending", booked=False)
    await day.refund(kept, 700, status="failed", booked=False)
    # Another day's business.
    await day.payment(9001, at=NOON - timedelta(days=1))

    report = await day.reconcile()

    assert report.differences == [] and report.problems == [] and report.clean
    assert (report.payments_checked, report.refunds_checked) == (3, 2)
    totals = {t.kind: t for t in report.totals}
    assert totals["payment"].amount_minor == (3001 + 5001 + 1001) * 100
    # 150 bp, half up: 4501.5 -> 4502, 7501.5 -> 7502, 1501.5 -> 1502.
    assert totals["payment"].platform_fee_minor == 4502 + 7502 + 1502
    assert totals["payment"].psp_fee_minor == 3_001
    assert (totals["refund"].count, totals["refund"].amount_minor) == (2, 300_100)


async def test_every_disagreement_is_reported(make_day: Any) -> None:
    day = make_day()
    fine = await day.payment()
    unbooked = await day.payment(booked=False)
    misbooked = await day.payment(3000, booked_amount=3001)
    # The PSP's fee reached the orchestrator after the completion event was published.
    fee_unbooked = await day.payment(2001)
    await day.pool.execute(
        "UPDATE orchestrator.payment SET fee_minor = 2001 WHERE id = $1", fee_unbooked
    )
    # The books collected a payment the orchestrator failed, and one it never heard of.
    failed = await day.payment(status="failed", booked=False)
    await day.book_payment(failed, 3001, NOON)
    unknown = uuid.uuid4()
    await day.book_payment(unknown, 1001, NOON)
    refund_unbooked = await day.refund(fine, 1000, booked=False)

    report = await day.reconcile()

    assert _found(report) == {
        ("missing_in_ledger", unbooked),
        ("amount_differs", misbooked),
        ("psp_fee_differs", fee_unbooked),
        ("not_expected", failed),
        ("not_expected", unknown),
        ("missing_in_ledger", refund_unbooked),
    }
    assert not report.clean and (report.payments_checked, report.refunds_checked) == (6, 1)
    amount = next(d for d in report.differences if d.kind == "amount_differs")
    assert amount.expected is not None and amount.booked is not None
    assert (amount.expected.amount_minor, amount.booked.amount_minor) == (300_000, 300_100)


async def test_a_refund_settled_at_midnight_reconciles_on_the_orchestrators_day(
    make_day: Any,
) -> None:
    day = make_day()
    paid = await day.payment()
    midnight = datetime(2026, 3, 15, tzinfo=UTC)
    # The orchestrator settled it just before midnight; its event was written just after.
    await day.refund(
        paid,
        1000,
        at=midnight - timedelta(milliseconds=1),
        booked_at=midnight + timedelta(milliseconds=2),
    )

    that_day = await day.reconcile(DAY)
    next_day = await day.reconcile(DAY + timedelta(days=1))

    assert that_day.clean and (that_day.payments_checked, that_day.refunds_checked) == (1, 1)
    # The books filed the refund under the next day; that day leaves it to its own.
    assert next_day.clean and next_day.refunds_checked == 0
    assert [t.kind for t in next_day.totals] == ["refund"]


async def test_a_day_narrows_to_a_merchant_and_an_environment(make_day: Any) -> None:
    day = make_day()
    other = Day(day.pool, day.door, day.provider, uuid.uuid4())
    live = Day(day.pool, day.door, day.provider, day.merchant, "live")
    await day.payment()
    await other.payment(booked=False)
    await live.payment()

    everything = await day.reconcile()
    mine = await day.reconcile(merchant_id=day.merchant)
    mine_in_test = await day.reconcile(merchant_id=day.merchant, environment="test")

    assert everything.payments_checked == 3 and len(everything.differences) == 1
    assert mine.clean and mine.payments_checked == 2
    assert mine_in_test.clean and mine_in_test.payments_checked == 1


async def _cli(infra: Infra, database_url: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(BIN / "fluxpay-ledger"),
        "reconcile",
        *args,
        env={
            "DATABASE_URL": database_url,
            "RABBITMQ_URL": infra.rabbitmq_url,
            "FLUXPAY_RECONCILE_RPC_TIMEOUT": "10",
            "PATH": "/usr/bin:/bin",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_reconcile_command_exits_zero_on_a_clean_day(
    make_day: Any, infra: Infra, orchestrator_answering: None
) -> None:
    day = make_day()
    paid = await day.payment(3001)
    await day.refund(paid, 1000)

    code, stdout, stderr = await _cli(
        infra, infra.database_url, "--day", DAY.isoformat(), "--provider", day.provider
    )

    assert code == 0, stderr[-2000:]
    report = json.loads(stdout)
    assert (report["day"], report["provider"], report["environment"]) == (
        DAY.isoformat(),
        day.provider,
        None,
    )
    assert (report["payments_checked"], report["refunds_checked"]) == (1, 1)
    assert report["differences"] == [] and report["problems"] == []
    assert {t["kind"]: t["amount_minor"] for t in report["totals"]} == {
        "payment": 300_100,
        "refund": 100_000,
    }


async def test_reconcile_command_prints_each_difference_and_exits_one(
    make_day: Any, infra: Infra, orchestrator_answering: None
) -> None:
    day = make_day()
    unbooked = await day.payment(2001, booked=False)

    code, stdout, stderr = await _cli(
        infra,
        infra.database_url,
        *("--day", DAY.isoformat(), "--provider", day.provider, "--environment", "test"),
        *("--merchant", str(day.merchant)),
    )

    assert code == 1
    [difference] = json.loads(stdout)["differences"]
    assert difference["kind"] == "missing_in_ledger" and difference["movement"] == "payment"
    assert difference["payment_id"] == str(unbooked) and difference["booked"] is None
    assert difference["expected"]["amount_minor"] == 200_100
    assert f"missing_in_ledger: payment {unbooked}" in stderr


async def test_reconcile_command_says_when_the_schemas_are_missing(infra: Infra) -> None:
    admin = await asyncpg.connect(infra.database_url)
    empty = f"fluxpay_empty_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{empty}"')
    try:
        url = infra.database_url.rsplit("/", 1)[0] + f"/{empty}"
        code, stdout, stderr = await _cli(infra, url, "--day", DAY.isoformat())
    finally:
        await admin.execute(f'DROP DATABASE "{empty}" WITH (FORCE)')
        await admin.close()
    assert (code, stdout) == (2, "")
    assert "reconcile needs the ledger's schema" in stderr


def test_an_unreachable_database_is_not_mistaken_for_a_difference(
    capsys: pytest.CaptureFixture[str],
) -> None:
    nowhere = "postgresql://postgres@127.0.0.1:1/fluxpay"
    assert run_reconcile(nowhere, DAY) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "could not read the database" in captured.err
