"""pytest plugin: each test run gets its own PostgreSQL database and RabbitMQ vhost.

The machine's servers outlive a run, so nothing is shared with a `make up` or an earlier
run: the database and vhost are created with a random name and removed afterwards.
Servers come from `DATABASE_URL` / `RABBITMQ_URL` (defaults: localhost); where they do
not answer and a Docker engine does, testcontainers starts throwaway ones.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest

T = TypeVar("T")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_MQ = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass(frozen=True)
class Infra:
    database_url: str
    rabbitmq_url: str

    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.database_url, "RABBITMQ_URL": self.rabbitmq_url}


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + path))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def isolated_infra() -> Iterator[Infra]:
    """A fresh database and vhost on the environment's servers, removed on exit."""
    pg_admin = os.environ.get("DATABASE_URL", DEFAULT_PG)
    mq_base = os.environ.get("RABBITMQ_URL", DEFAULT_MQ)
    containers: list[Any] = []
    if not _answers(pg_admin, 5432) or not _answers(mq_base, 5672):
        pg_admin, mq_base, containers = _start_containers()
    name = f"fluxpay_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_create_database(pg_admin, name))
    vhost_made = not containers and shutil.which("rabbitmqctl") is not None
    if vhost_made:
        _rabbitmqctl("add_vhost", name)
        user = urlsplit(mq_base).username or "guest"
        _rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
    mq_url = _with_path(mq_base, quote(name, safe="")) if vhost_made else mq_base
    try:
        yield Infra(_with_path(pg_admin, name), mq_url)
    finally:
        asyncio.run(_drop_database(pg_admin, name))
        if vhost_made:
            _rabbitmqctl("delete_vhost", name)
        for container in containers:
            container.stop()


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with isolated_infra() as infra:
        yield infra


def _start_containers() -> tuple[str, str, list[Any]]:  # pragma: no cover - needs Docker
    try:
        from testcontainers.postgres import PostgresContainer
        from testcontainers.rabbitmq import RabbitMqContainer

        postgres = PostgresContainer("postgres:16-alpine", driver=None).start()
        rabbit = RabbitMqContainer("rabbitmq:3.13-alpine").start()
    except Exception as exc:
        raise RuntimeError(
            "PostgreSQL/RabbitMQ do not answer at DATABASE_URL/RABBITMQ_URL and no Docker "
            f"engine is available for testcontainers: {exc!r}"
        ) from exc
    mq = f"amqp://guest:guest@{rabbit.get_container_host_ip()}:{rabbit.get_exposed_port(5672)}/"
    return postgres.get_connection_url(), mq, [postgres, rabbit]


@pytest.fixture(scope="session")
def database_url(infra: Infra) -> str:
    return infra.database_url


@pytest.fixture(scope="session")
def rabbitmq_url(infra: Infra) -> str:
    return infra.rabbitmq_url


async def wait_for(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float = 20.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll `probe` until it returns a truthy value or the deadline passes (no blind sleeps)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
