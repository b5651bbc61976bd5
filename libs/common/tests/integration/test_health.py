"""Every process answers /healthz and /readyz; readiness follows PostgreSQL and RabbitMQ.

The shared servers are never stopped: each process reaches them through TCP proxies this
test owns, and "the database goes away" is the proxy refusing and cutting connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fluxpay_testing.infra import Infra, free_port, isolated_infra, wait_for
from fluxpay_testing.proxy import TcpProxy

BIN = Path(sys.executable).parent
# Each process by its command; `port_setting` names where it answers the health routes.
PROCESSES = {
    "gateway": (["fluxpay-gateway"], "FLUXPAY_GATEWAY_PORT"),
    "orchestrator": (["fluxpay-orchestrator"], "FLUXPAY_HEALTH_PORT"),
    "ledger": (["fluxpay-ledger"], "FLUXPAY_HEALTH_PORT"),
    "webhooks": (["fluxpay-webhooks"], "FLUXPAY_HEALTH_PORT"),
    "connector-sandbox": (["fluxpay-connector", "--provider", "sandbox"], "FLUXPAY_HEALTH_PORT"),
    # A connector with a PSP callback server answers the probes on that same port.
    "connector-novasend": (
        ["fluxpay-connector", "--provider", "novasend"],
        "FLUXPAY_CONNECTOR_HTTP_PORT",
    ),
}


def _target(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


@pytest.fixture(scope="module")
def infra() -> Iterator[Infra]:
    """A database and vhost of this module's own: the services declare the whole topology,
    which other tests sharing the run's vhost do not expect."""
    with isolated_infra() as own:
        yield own


@dataclass
class Proxies:
    database: TcpProxy
    broker: TcpProxy


@pytest.fixture
async def proxies(infra: Infra) -> AsyncIterator[Proxies]:
    proxies = Proxies(
        TcpProxy(_target(infra.database_url, 5432)), TcpProxy(_target(infra.rabbitmq_url, 5672))
    )
    await proxies.database.restore()
    await proxies.broker.restore()
    yield proxies
    for proxy in (proxies.database, proxies.broker):
        if proxy._server is not None:
            await proxy.cut()


@dataclass
class Process:
    popen: asyncio.subprocess.Process
    base_url: str

    async def readiness(self) -> tuple[int, dict[str, object]]:
        async with httpx.AsyncClient(timeout=5) as client:
            try:
                response = await client.get(f"{self.base_url}/readyz")
            except httpx.TransportError:
                return 0, {}
        return response.status_code, response.json()

    async def wait_ready(
        self, ready: bool, timeout: float = 30.0, failing: str | None = None
    ) -> dict[str, object]:
        """The readiness body once it says `ready`; not ready: also with the check named
        `failing` false (with the broker cut, the consumers' check may flip before the
        publishing connection's, and readiness turns false with the first of them)."""

        async def probe() -> dict[str, object] | None:
            status, body = await self.readiness()
            if status != (200 if ready else 503):
                return None
            if failing is not None and body["checks"][failing] is not False:  # type: ignore[index]
                return None
            return body

        body = await wait_for(probe, timeout=timeout, interval=0.2, what=f"ready={ready}")
        assert self.popen.returncode is None, "the process exited"
        return body


@contextlib.asynccontextmanager
async def running(name: str, env: dict[str, str]) -> AsyncIterator[Process]:
    command, port_setting = PROCESSES[name]
    port = free_port()
    # Asynchronous: the process talks through this loop's proxies, up to its graceful stop.
    popen = await asyncio.create_subprocess_exec(
        str(BIN / command[0]),
        *command[1:],
        env={**os.environ, **env, port_setting: str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield Process(popen, f"http://127.0.0.1:{port}")
    finally:
        popen.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(popen.wait(), 30)
        except TimeoutError:
            popen.kill()
            await popen.wait()


def _env(infra: Infra, proxies: Proxies) -> dict[str, str]:
    return {
        "DATABASE_URL": proxies.database.url(infra.database_url),
        "RABBITMQ_URL": proxies.broker.url(infra.rabbitmq_url),
        "FLUXPAY_LOG_LEVEL": "WARNING",
    }


@pytest.mark.parametrize("name", list(PROCESSES))
async def test_every_process_answers_liveness_and_readiness(
    name: str, infra: Infra, proxies: Proxies
) -> None:
    async with running(name, _env(infra, proxies)) as process:
        body = await process.wait_ready(True)
        async with httpx.AsyncClient(timeout=5) as client:
            alive = await client.get(f"{process.base_url}/healthz")
    assert alive.status_code == 200
    assert process.popen.returncode == 0, "SIGTERM stops it gracefully"
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert checks["database"] is True
    assert checks["broker"] is True
    if name != "gateway":
        assert checks["consumers"] is True


@pytest.mark.parametrize("name", ["ledger", "gateway"])
async def test_readiness_turns_false_when_postgres_or_rabbitmq_go_away_and_back(
    name: str, infra: Infra, proxies: Proxies
) -> None:
    async with running(name, _env(infra, proxies)) as process:
        await process.wait_ready(True)

        await proxies.database.cut()
        body = await process.wait_ready(False, timeout=10, failing="database")
        assert body["checks"]["database"] is False  # type: ignore[index]
        await proxies.database.restore()
        await process.wait_ready(True)

        await proxies.broker.cut()
        body = await process.wait_ready(False, timeout=10, failing="broker")
        assert body["checks"]["broker"] is False  # type: ignore[index]
        await proxies.broker.restore()
        body = await process.wait_ready(True)
        if name != "gateway":
            # The consumers came back with the connection, not only the connection.
            assert body["checks"]["consumers"] is True  # type: ignore[index]


@pytest.mark.parametrize("name", ["orchestrator", "gateway"])
async def test_process_started_before_its_servers_waits_not_ready_then_serves(
    name: str, infra: Infra, proxies: Proxies
) -> None:
    await proxies.database.cut()
    await proxies.broker.cut()
    async with running(name, _env(infra, proxies)) as process:
        body = await process.wait_ready(False)
        assert body["checks"] == {
            "database": False,
            "broker": False,
            **({} if name == "gateway" else {"consumers": False}),
        }
        async with httpx.AsyncClient(timeout=5) as client:
            alive = await client.get(f"{process.base_url}/healthz")
        assert alive.status_code == 200
        await proxies.database.restore()
        await proxies.broker.restore()
        await process.wait_ready(True)


@pytest.mark.parametrize(
    ("command", "env", "variable"),
    [
        (["fluxpay-ledger"], {}, "FLUXPAY_SECRETS_KEY"),
        (["fluxpay-gateway"], {"FLUXPAY_SECRETS_KEY": "k" * 43 + "="}, "DATABASE_URL"),
        (
            ["fluxpay-connector", "--provider", "novasend"],
            {
                "FLUXPAY_SECRETS_KEY": "k" * 43 + "=",
                "DATABASE_URL": "postgresql://fluxpay@db.invalid/fluxpay",
                "RABBITMQ_URL": "amqp://fluxpay@mq.invalid/",
            },
            "FLUXPAY_NOVASEND_API_KEY",
        ),
    ],
)
def test_missing_secret_outside_development_stops_the_process_with_its_name(
    command: list[str], env: dict[str, str], variable: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "RABBITMQ_URL"}}
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        env={**clean, **env, "FLUXPAY_DEPLOYMENT": "production"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"{variable} must be set outside development" in result.stderr
