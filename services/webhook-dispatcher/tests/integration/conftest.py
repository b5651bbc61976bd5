"""The dispatcher as a real process (its console script) against the run's PG and RabbitMQ."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
from faststream.rabbit import RabbitBroker
from fluxpay_testing.infra import Infra, wait_for

from fluxpay_common.crypto import SecretBox
from fluxpay_common.ids import utcnow
from fluxpay_common.messages import (
    Environment,
    MerchantEndpointChanged,
    Message,
    PaymentEvent,
    PaymentView,
    SealedSecret,
)
from fluxpay_common.runtime import make_broker
from fluxpay_common.settings import DEV_SECRETS_KEY, ServiceSettings
from fluxpay_common.topology import EVENTS, declare_topology

try:
    from tests.support.receiver import WebhookReceiver
except ModuleNotFoundError:  # run on its own, the repository root is not on sys.path
    sys.path.append(str(Path(__file__).resolve().parents[4]))
    from tests.support.receiver import WebhookReceiver

ROOT = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent
# Compressed schedule: attempts at 0 s, +1 s, +1 s, +2 s; one attempt may last 1 s.
WORKER_ENV = {
    "FLUXPAY_WEBHOOK_RETRY_SCHEDULE": "0,1,1,2",
    "FLUXPAY_WEBHOOK_TIMEOUT_SECONDS": "1",
    # The receiver is http on 127.0.0.1 (development only); test_guard.py runs without it.
    "FLUXPAY_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS": "true",
    "FLUXPAY_LOG_LEVEL": "INFO",
    "PYTHONUNBUFFERED": "1",
}
BOX = SecretBox(DEV_SECRETS_KEY)


class WorkerProcess:
    """`fluxpay-webhooks`, started, crashed and restarted by tests."""

    def __init__(self, infra: Infra, log_path: Path, env: dict[str, str] | None = None) -> None:
        self._infra = infra
        self._log_path = log_path
        self._env = {**WORKER_ENV, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXPAY_")}
        env.update({**self._infra.env(), **self._env})
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self._log_path.open("ab")
        self.process = subprocess.Popen(
            [str(BIN / "fluxpay-webhooks")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )

    def ensure_running(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.start()

    def crash(self) -> None:
        """SIGKILL: no graceful stop, nothing handed back."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def webhook_worker(infra: Infra, request: pytest.FixtureRequest) -> Iterator[WorkerProcess]:
    """One worker per test module; a module's `WORKER_ENV_OVERRIDES` change its settings."""
    log_path = ROOT / "artifacts" / f"webhooks-it-{uuid.uuid4().hex[:6]}" / "webhooks.log"
    overrides = getattr(request.module, "WORKER_ENV_OVERRIDES", None)
    worker = WorkerProcess(infra, log_path, overrides)
    worker.start()
    yield worker
    assert worker.stop() in (0, None), f"dispatcher did not stop cleanly; log: {log_path}"


@pytest.fixture
async def worker(webhook_worker: WorkerProcess, wh_db: asyncpg.Connection) -> WorkerProcess:
    """A running dispatcher whose schema is migrated (it may have been crashed by a test)."""
    webhook_worker.ensure_running()

    async def migrated() -> bool:
        return bool(await wh_db.fetchval("SELECT to_regclass('webhooks.delivery') IS NOT NULL"))

    await wait_for(migrated, timeout=30, what="the webhooks schema")
    return webhook_worker


@pytest.fixture
async def wh_db(infra: Infra) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(infra.database_url)
    yield conn
    await conn.close()


@pytest.fixture(scope="module")
async def wh_broker(infra: Infra) -> AsyncIterator[RabbitBroker]:
    settings = ServiceSettings(RABBITMQ_URL=infra.rabbitmq_url, DATABASE_URL=infra.database_url)
    broker = make_broker(settings)
    await broker.connect()
    await declare_topology(broker, settings.delivery_limit)
    yield broker
    await broker.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


class EventFactory:
    """Builds and publishes the messages the dispatcher consumes."""

    def __init__(self, broker: RabbitBroker) -> None:
        self._broker = broker

    async def publish(self, message: Message) -> None:
        await self._broker.publish(
            message.to_bytes(),
            exchange=EVENTS,
            routing_key=str(message.type),  # type: ignore[attr-defined]
            message_id=str(message.message_id),
            content_type="application/json",
            persist=True,
        )

    @staticmethod
    def endpoint_changed(
        merchant_id: uuid.UUID,
        url: str | None,
        secrets: list[str],
        overlap_until: datetime | None = None,
        environment: Environment | None = None,
        expiries: list[datetime | None] | None = None,
    ) -> MerchantEndpointChanged:
        """Without `environment`, a change as older gateways sent it (both environments);
        `expiries`, one per secret, as the gateway sends them now."""
        sealed = [BOX.seal(secret) for secret in secrets]
        return MerchantEndpointChanged(
            merchant_id=merchant_id,
            webhook_url=url,
            webhook_secrets_sealed=sealed,
            secret_overlap_until=overlap_until,
            environment=environment,
            secrets=None
            if expiries is None
            else [
                SealedSecret(sealed=s, expires_at=e) for s, e in zip(sealed, expiries, strict=True)
            ],
        )

    @staticmethod
    def payment_completed(
        merchant_id: uuid.UUID,
        environment: Environment = "test",
        callback_url: str | None = None,
    ) -> PaymentEvent:
        payment = PaymentView.model_validate(
            {
                "id": uuid.uuid4(),
                "reference": f"order-{uuid.uuid4()}",
                "status": "completed",
                "amount": 3000,
                "amount_minor": 300000,
                "currency": "XOF",
                "country": "BJ",
                "mode": "direct",
                "operator": "mtn",
                "next_action": {"type": "none"},
                "environment": environment,
                "created_at": utcnow(),
            }
        )
        return PaymentEvent(
            type="collect.payment.completed",
            merchant_id=merchant_id,
            environment=environment,
            callback_url=callback_url,
            payment=payment,
        )


@pytest.fixture
def events(wh_broker: RabbitBroker) -> EventFactory:
    return EventFactory(wh_broker)


@pytest.fixture
def merchant_id() -> uuid.UUID:
    return uuid.uuid4()


class WebhookRows:
    """Reads the dispatcher's tables for assertions."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def delivery(self, event_id: object) -> asyncpg.Record | None:
        return await self._conn.fetchrow(
            "SELECT * FROM webhooks.delivery WHERE event_id = $1", str(event_id)
        )

    async def delivery_in(self, event_id: object, *statuses: str) -> asyncpg.Record | None:
        row = await self.delivery(event_id)
        return row if row is not None and row["status"] in statuses else None

    async def attempts(self, event_id: object) -> list[asyncpg.Record]:
        return await self._conn.fetch(
            "SELECT a.* FROM webhooks.delivery_attempt a"
            " JOIN webhooks.delivery d ON d.id = a.delivery_id"
            " WHERE d.event_id = $1 ORDER BY a.attempt_number, a.id",
            str(event_id),
        )

    async def delivery_count(self, event_id: object) -> int:
        return int(
            await self._conn.fetchval(
                "SELECT count(*) FROM webhooks.delivery WHERE event_id = $1", str(event_id)
            )
        )

    async def event_body(self, event_id: object) -> bytes | None:
        return await self._conn.fetchval(
            "SELECT body FROM webhooks.event WHERE id = $1", str(event_id)
        )

    async def endpoint_enabled(self, merchant_id: uuid.UUID, environment: str = "test") -> bool:
        row = await self.endpoint(merchant_id, environment)
        return row is not None and row["disabled_at"] is None

    async def endpoint(
        self, merchant_id: uuid.UUID, environment: str = "test"
    ) -> asyncpg.Record | None:
        return await self._conn.fetchrow(
            "SELECT * FROM webhooks.endpoint WHERE merchant_id = $1 AND environment = $2",
            merchant_id,
            environment,
        )


@pytest.fixture
def rows(wh_db: asyncpg.Connection) -> WebhookRows:
    return WebhookRows(wh_db)
