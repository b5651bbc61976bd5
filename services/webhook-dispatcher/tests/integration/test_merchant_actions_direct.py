"""Merchant commands called directly with a pool: redelivery, refusals and races.

No dispatcher runs in this module: deliveries stay where the commands leave them.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from fluxpay_testing.infra import Infra, wait_for

from fluxpay_common.db import create_pool, migrate
from fluxpay_common.ids import utcnow
from fluxpay_common.messages import Message, QueryReply, WebhooksCommand
from webhook_dispatcher.adapters import replays
from webhook_dispatcher.service_layer import handlers
from webhook_dispatcher.service_layer.merchant_commands import answer

CONFIG = handlers.HandlerConfig(endpoint_wait=timedelta(hours=1))
# Nothing listens there; no dispatcher runs in this module anyway.
URL = "http://127.0.0.1:9/hooks"


@pytest.fixture(scope="module")
async def wh_pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    # Warm connections: concurrent commands really overlap instead of queueing for one.
    pool = await create_pool(infra.database_url, "webhooks", min_size=8, max_size=8)
    await migrate(pool, "webhooks", importlib.resources.files("webhook_dispatcher") / "migrations")
    yield pool
    await pool.close()


class Scope:
    """One merchant and environment: feeds the consumer's handler, sends commands."""

    def __init__(self, pool: asyncpg.Pool, db: asyncpg.Connection, events: Any) -> None:
        self.pool, self.db, self.events = pool, db, events
        self.merchant_id = uuid.uuid4()

    def command(self, kind: str, **fields: Any) -> WebhooksCommand:
        return WebhooksCommand(
            type=kind,  # type: ignore[arg-type]
            merchant_id=self.merchant_id,
            environment="test",
            **fields,
        )

    async def ask(self, command: WebhooksCommand) -> QueryReply:
        return await answer(self.pool, command)

    async def ingest(self, message: Message) -> None:
        await handlers.handle(self.pool, message, CONFIG)

    async def endpoint(self, url: str | None = URL) -> None:
        await self.ingest(self.events.endpoint_changed(self.merchant_id, url, ["whsec_direct"]))

    async def failed_events(self, n: int) -> list[str]:
        """Events never sent because the endpoint was disabled, then the endpoint fixed."""
        await self.endpoint()
        await self.db.execute(
            "UPDATE webhooks.endpoint SET disabled_at = now(), disabled_reason = 'test'"
            " WHERE merchant_id = $1",
            self.merchant_id,
        )
        messages = [self.events.payment_completed(self.merchant_id) for _ in range(n)]
        for message in messages:
            await self.ingest(message)
        await self.endpoint()  # configuring it again re-enables it
        return [str(m.message_id) for m in messages]

    async def statuses(self, event_id: str) -> list[str]:
        rows = await self.db.fetch(
            "SELECT status FROM webhooks.delivery WHERE event_id = $1 ORDER BY created_at",
            event_id,
        )
        return [r["status"] for r in rows]


@pytest.fixture
def scope(wh_pool: asyncpg.Pool, wh_db: asyncpg.Connection, events: Any) -> Scope:
    return Scope(wh_pool, wh_db, events)


async def test_a_redelivered_replay_is_answered_from_the_first_run(scope: Scope) -> None:
    [event_id] = await scope.failed_events(1)
    command = scope.command("webhooks.replay_event", event_id=event_id)
    first, again = await scope.ask(command), await scope.ask(command)
    assert first.error is None and first.data["status"] == "pending"
    assert again.data == first.data
    assert await scope.statuses(event_id) == ["endpoint_disabled", "pending"]


async def test_replaying_an_event_still_pending_brings_it_forward_instead_of_doubling(
    scope: Scope,
) -> None:
    await scope.endpoint()
    message = scope.events.payment_completed(scope.merchant_id)
    await scope.ingest(message)
    event_id = str(message.message_id)
    await scope.db.execute(  # mid-schedule: two failed attempts, the next in an hour
        "UPDATE webhooks.delivery SET attempt_count = 2, next_attempt_at = now() + interval"
        " '1 hour' WHERE event_id = $1",
        event_id,
    )
    answers = [
        await scope.ask(scope.command("webhooks.replay_event", event_id=event_id)) for _ in range(2)
    ]
    [original] = await scope.db.fetch(
        "SELECT id, next_attempt_at <= now() AS due FROM webhooks.delivery WHERE event_id = $1",
        event_id,
    )
    assert {a.data["delivery_id"] for a in answers} == {str(original["id"])}
    assert original["due"] is True


async def test_a_refused_command_leaves_no_trace_and_runs_once_the_endpoint_is_fixed(
    scope: Scope,
) -> None:
    await scope.endpoint()
    await scope.db.execute(
        "UPDATE webhooks.endpoint SET disabled_at = now() WHERE merchant_id = $1",
        scope.merchant_id,
    )
    message = scope.events.payment_completed(scope.merchant_id)
    await scope.ingest(message)
    command = scope.command("webhooks.replay_event", event_id=str(message.message_id))

    refused = await scope.ask(command)
    assert refused.error is not None and refused.error.code == "endpoint_disabled"
    handled = "SELECT count(*) FROM webhooks.inbox_message WHERE message_id = $1"
    assert await scope.db.fetchval(handled, command.message_id) == 0
    await scope.endpoint()
    accepted = await scope.ask(command)
    assert accepted.error is None and accepted.data["status"] == "pending"
    assert await scope.db.fetchval(handled, command.message_id) == 1


async def test_concurrent_replays_of_every_failed_event_schedule_each_once(
    scope: Scope,
) -> None:
    since = utcnow() - timedelta(minutes=1)
    event_ids = await scope.failed_events(5)
    commands = [scope.command("webhooks.replay_failed", since=since) for _ in range(6)]
    # Hold the merchant's replay lock until all six wait on it, then let them race.
    async with scope.pool.acquire() as holder, holder.transaction():
        await replays.lock_replays(holder, scope.merchant_id, "test")
        racing = [asyncio.create_task(scope.ask(c)) for c in commands]
        await wait_for(lambda: _waiting_on_advisory_locks(scope.db, 6), what="six waiting")
    answers = await asyncio.gather(*racing)
    assert sorted(a.data["replayed"] for a in answers) == [0, 0, 0, 0, 0, 5]
    for event_id in event_ids:
        assert await scope.statuses(event_id) == ["endpoint_disabled", "pending"]
    [winner] = [c for c, a in zip(commands, answers, strict=True) if a.data["replayed"] == 5]
    redelivered = await scope.ask(winner)
    assert redelivered.data["replayed"] == 5, "a redelivery answers what the first run did"
    assert await scope.statuses(event_ids[0]) == ["endpoint_disabled", "pending"]


async def _waiting_on_advisory_locks(db: asyncpg.Connection, n: int) -> bool:
    waiting = await db.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    return int(waiting) >= n


async def test_test_events_are_sent_once_and_never_bulk_replayed(scope: Scope) -> None:
    await scope.endpoint()
    command = scope.command("webhooks.send_test")
    first, again = await scope.ask(command), await scope.ask(command)
    assert first.data["id"] == again.data["id"] == str(command.message_id)
    assert await scope.statuses(first.data["id"]) == ["pending"], "one event, one delivery"
    await scope.db.execute(
        "UPDATE webhooks.delivery SET status = 'dead', next_attempt_at = NULL WHERE event_id = $1",
        first.data["id"],
    )
    since = utcnow() - timedelta(minutes=1)
    replayed = await scope.ask(scope.command("webhooks.replay_failed", since=since))
    assert replayed.data == {"object": "event_replay", "replayed": 0}
    explicit = await scope.ask(scope.command("webhooks.replay_event", event_id=first.data["id"]))
    assert explicit.error is None, "a test event can still be replayed on purpose"


@pytest.mark.parametrize(
    ("kind", "fields", "code", "param"),
    [
        ("webhooks.list_events", {"limit": 0}, "parameter_invalid", "limit"),
        ("webhooks.list_events", {"limit": 101}, "parameter_invalid", "limit"),
        ("webhooks.get_event", {}, "parameter_missing", "event_id"),
        ("webhooks.replay_event", {}, "parameter_missing", "event_id"),
        ("webhooks.replay_failed", {}, "parameter_missing", "since"),
    ],
)
async def test_malformed_commands_answer_a_400_naming_the_parameter(
    scope: Scope, kind: str, fields: dict[str, Any], code: str, param: str
) -> None:
    reply = await scope.ask(scope.command(kind, **fields))
    assert reply.error is not None and reply.error.status == 400
    assert (reply.error.code, reply.error.param) == (code, param)
