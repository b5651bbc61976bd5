"""The bare infrastructure's ceiling on this machine, measured in the same run as the platform."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import aio_pika
import asyncpg

from tests.bench.cpu import machine_busy_seconds


@dataclass(frozen=True)
class Ceiling:
    """A bare operation's rate, and the whole machine's CPU per operation meanwhile (server
    and Python client together: what the platform pays per operation at the least)."""

    per_second: float
    cpu_ms_each: float


def _ceiling(done: int, elapsed: float, busy: float) -> Ceiling:
    return Ceiling(done / elapsed, busy * 1000 / max(done, 1))


async def asyncpg_transactions_per_second(
    dsn: str, seconds: float = 5.0, workers: int = 16
) -> Ceiling:
    """Small write transactions (insert + update, like a state change with its outbox row)."""
    pool = await asyncpg.create_pool(dsn, min_size=workers, max_size=workers)
    table = f"bench_{uuid.uuid4().hex[:8]}"
    await pool.execute(f"CREATE TABLE {table} (id uuid PRIMARY KEY, n int)")
    done = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            async with pool.acquire() as conn, conn.transaction():
                key = uuid.uuid4()
                await conn.execute(f"INSERT INTO {table} VALUES ($1, 0)", key)
                await conn.execute(f"UPDATE {table} SET n = 1 WHERE id = $1", key)
            done += 1

    started, busy = time.monotonic(), machine_busy_seconds()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed, busy = time.monotonic() - started, machine_busy_seconds() - busy
    await pool.execute(f"DROP TABLE {table}")
    await pool.close()
    return _ceiling(done, elapsed, busy)


async def rabbitmq_messages_per_second(url: str, count: int = 20000) -> Ceiling:
    """Persistent publish with confirms into a quorum queue and consume with acks."""
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True)
    await channel.set_qos(prefetch_count=200)
    name = f"bench.{uuid.uuid4().hex[:8]}"
    queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    received = asyncio.Event()
    seen = 0

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal seen
        await message.ack()
        seen += 1
        if seen == count:
            received.set()

    await queue.consume(on_message)
    started, busy = time.monotonic(), machine_busy_seconds()
    batch = 500
    for offset in range(0, count, batch):
        await asyncio.gather(
            *(
                channel.default_exchange.publish(
                    aio_pika.Message(b"x" * 512, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=name,
                )
                for _ in range(min(batch, count - offset))
            )
        )
    await asyncio.wait_for(received.wait(), 120)
    elapsed, busy = time.monotonic() - started, machine_busy_seconds() - busy
    await queue.delete(if_unused=False, if_empty=False)
    await connection.close()
    return _ceiling(count, elapsed, busy)
