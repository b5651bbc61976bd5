"""A fault scenario: the whole stack under steady merchant load while things break.

Used by `make chaos` (long, with RabbitMQ and PostgreSQL restarts) and, shortened, by the
end-to-end tier of `make test`. The load behaves like a careful merchant: a create that got
no answer (a killed gateway, a 503) is retried with the same Idempotency-Key until answered,
so every payment the merchant meant to make is acknowledged exactly once.

Afterwards it checks, and prints with the figures:
- every acknowledged payment reached its terminal status (or its documented waiting one);
- no customer was charged twice (one provider attempt per payment);
- the ledger holds exactly one balanced entry per completed payment and per completed refund,
  and the merchant's balance equals the sum of its postings;
- every terminal event reached the merchant's receiver with a valid signature;
- no dead-letter queue holds anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import asyncpg
import httpx
from fluxpay_testing.infra import Infra, wait_for

from fluxpay_common import topology
from tests.support.receiver import Received, WebhookReceiver
from tests.support.stack import ROOT, Stack, add_psp

TERMINAL = {"completed", "failed", "cancelled", "expired", "refunded"}


@dataclass
class Intent:
    """One payment the merchant means to make, and what it should become."""

    reference: str
    phone: str
    operator: str
    key: str = field(default_factory=lambda: str(uuid.uuid4()))
    payment_id: str | None = None
    expected: str = "completed"
    refund: bool = False
    refund_id: str | None = None
    refund_key: str = field(default_factory=lambda: str(uuid.uuid4()))
    # A live payment through a real PSP's simulator (Novasend), not the sandbox.
    live: bool = False

    def body(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "amount": 3000,
            "currency": "XOF",
            "country": "BJ",
            "mode": "direct",
            "operator": self.operator,
            "customer": {"phone": self.phone},
        }


@dataclass
class Figures:
    intents: int = 0
    acknowledged: int = 0
    create_retries: int = 0
    status_5xx: int = 0
    status_500: int = 0
    faults: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def make_intent(rng: random.Random, with_psp: bool = False) -> Intent:
    draw = rng.random()
    reference = f"chaos-{uuid.uuid4()}"
    if with_psp and draw > 0.75:
        # Live Moov Benin goes to Novasend; 000004: its callback never comes (polling only).
        phone = "+22995000004" if draw > 0.9 else "+22995000001"
        return Intent(reference, phone, "moov", live=True)
    if draw < 0.1:
        return Intent(reference, "+22997000002", "mtn", expected="failed")
    if draw < 0.2:
        return Intent(reference, "+22997000001", "coris")  # OTP, confirmed with 123456
    return Intent(reference, "+22997000001", "mtn", refund=0.6 < draw <= 0.75)


class Load:
    """Steady merchant traffic with retries, as an integrating merchant would write it."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        figures: Figures,
        seed: int = 7,
        live_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._client = client
        self._live_client = live_client
        self._figures = figures
        self._rng = random.Random(seed)
        self.intents: list[Intent] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def client_for(self, intent: Intent) -> httpx.AsyncClient:
        return self._live_client if intent.live and self._live_client else self._client

    async def _post(
        self, path: str, json: Any, key: str | None = None, client: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        """POST until the platform answers something other than a 5xx or a broken connection."""
        headers = {"Idempotency-Key": key} if key else {}
        client = client or self._client
        deadline = time.monotonic() + 180
        while True:
            try:
                response = await client.post(path, json=json, headers=headers)
                busy = response.status_code == 409 and (
                    "idempotency_key_in_use" in response.text or "otp_not_ready" in response.text
                )
                if response.status_code < 500 and not busy:
                    return response
                self._figures.status_5xx += 1
                if response.status_code == 500:
                    self._figures.status_500 += 1
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer for {path}")
            self._figures.create_retries += 1
            await asyncio.sleep(0.5)

    async def _guarded(self, intent: Intent) -> None:
        try:
            await self._one(intent)
        except Exception as exc:
            self._figures.problems.append(f"{intent.reference}: {exc!r}")

    async def _one(self, intent: Intent) -> None:
        response = await self._post(
            "/collect/payments", intent.body(), intent.key, self.client_for(intent)
        )
        if response.status_code not in (200, 201):
            self._figures.problems.append(f"create {intent.reference}: {response.text[:200]}")
            return
        intent.payment_id = response.json()["id"]
        self._figures.acknowledged += 1
        if intent.operator == "coris":
            confirm = await self._post(
                f"/collect/payments/{intent.payment_id}/confirm", {"otp": "123456"}
            )
            if confirm.status_code not in (200, 409):
                self._figures.problems.append(f"confirm: {confirm.text[:200]}")
        if intent.refund:
            await self._refund_when_completed(intent)

    async def _refund_when_completed(self, intent: Intent) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = await self.status(intent)
            if status == "completed":
                break
            await asyncio.sleep(0.5)
        response = await self._post(
            f"/collect/payments/{intent.payment_id}/refunds", {"amount": 1000}, intent.refund_key
        )
        if response.status_code in (200, 201):
            intent.refund_id = response.json()["id"]
        elif response.json()["error"]["code"] != "insufficient_balance":
            self._figures.problems.append(f"refund: {response.text[:200]}")

    async def status(self, intent: Intent) -> str | None:
        try:
            response = await self.client_for(intent).get(f"/collect/payments/{intent.payment_id}")
        except httpx.HTTPError:
            return None
        return str(response.json()["status"]) if response.status_code == 200 else None

    async def run(self, seconds: float, rate: float) -> None:
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < seconds:
            intent = make_intent(self._rng, with_psp=self._live_client is not None)
            self.intents.append(intent)
            self._figures.intents += 1
            task = asyncio.create_task(self._guarded(intent))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))

    async def settle(self, timeout: float) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)


Fault = Callable[[], Awaitable[str]]


def kill_and_restart(stack: Stack, name: str, down_seconds: float = 1.0) -> Fault:
    async def fault() -> str:
        stack.kill(name, signal.SIGKILL)
        await asyncio.sleep(down_seconds)
        stack.start_service(name)
        return f"SIGKILL {name}, restarted after {down_seconds:.0f}s"

    return fault


def failing_receiver(receiver_state: dict[str, int], seconds: float) -> Fault:
    async def fault() -> str:
        receiver_state["failing"] = 1
        await asyncio.sleep(seconds)
        receiver_state["failing"] = 0
        return f"merchant receiver answered 503 for {seconds:.0f}s"

    return fault


def restart_rabbitmq() -> Fault:
    async def fault() -> str:
        await asyncio.to_thread(
            subprocess.run, ["rabbitmqctl", "-q", "stop_app"], check=True, timeout=120
        )
        await asyncio.sleep(2)
        await asyncio.to_thread(
            subprocess.run, ["rabbitmqctl", "-q", "start_app"], check=True, timeout=120
        )
        return "RabbitMQ application stopped for 2s and started"

    return fault


def restart_postgres(client: httpx.AsyncClient, figures: Figures) -> Fault:
    async def fault() -> str:
        cluster = sorted(os.listdir("/etc/postgresql"))[0]
        ctl = ["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main"]
        await asyncio.to_thread(subprocess.run, [*ctl, "stop", "-m", "fast"], check=True)
        try:
            # While PostgreSQL is down the API must answer 503 in the error shape, never 500.
            async with httpx.AsyncClient(
                base_url=client.base_url, headers=client.headers, timeout=15
            ) as probe_client:
                probe = await probe_client.get("/collect/payments/no-such-payment")
            figures.details["api_status_with_postgres_down"] = probe.status_code
            if probe.status_code != 503 or "error" not in probe.json():
                figures.problems.append(f"PostgreSQL down: API answered {probe.status_code}")
            await asyncio.sleep(2)
        finally:
            await asyncio.to_thread(subprocess.run, [*ctl, "start"], check=True)
        return f"PostgreSQL stopped for 2s (API answered {probe.status_code}) and started"

    return fault


def psp_fault(sim_url: str, spec: dict[str, Any], what: str) -> Fault:
    async def fault() -> str:
        async with httpx.AsyncClient(base_url=sim_url, timeout=10) as sim:
            response = await sim.post("/_sim/faults", json=spec)
            response.raise_for_status()
        return what

    return fault


async def psp_charges_per_payment(sim_url: str) -> dict[str, int]:
    """Sessions the PSP opened per merchant reference (distinct idempotency keys it saw)."""
    async with httpx.AsyncClient(base_url=sim_url, timeout=30) as sim:
        seen = (
            await sim.get("/_sim/requests", params={"path": "/v1/payin/sessions", "method": "POST"})
        ).json()
    keys: dict[str, set[str]] = {}
    for request in seen:
        try:
            reference = json.loads(request["body"])["reference"]
        except (ValueError, KeyError, TypeError):
            continue
        keys.setdefault(reference, set()).add(request["headers"].get("x-idempotency-key", ""))
    return {reference: len(k) for reference, k in keys.items()}


async def run_faults(faults: list[Fault], gap: float, figures: Figures) -> None:
    for fault in faults:
        await asyncio.sleep(gap)
        figures.faults.append(await fault())


async def _dead_letters(url: str) -> dict[str, int]:
    connection = await aio_pika.connect(url)
    counts: dict[str, int] = {}
    try:
        channel = await connection.channel()
        for route in topology.all_routes():
            queue = await channel.declare_queue(f"{route.queue}.dlq", passive=True)
            counts[route.queue] = queue.declaration_result.message_count or 0
    finally:
        await connection.close()
    return counts


def _verified(
    receiver: WebhookReceiver, secrets: list[str]
) -> list[tuple[dict[str, object], Received]]:
    """Events signed with one of the merchant's secrets (test and live have their own)."""
    return [pair for secret in secrets for pair in receiver.verified_events(secret)]


async def verify(
    infra: Infra,
    load: Load,
    receiver: WebhookReceiver,
    secrets: list[str],
    merchant_id: str,
    figures: Figures,
    timeout: float,
) -> None:
    acknowledged = [i for i in load.intents if i.payment_id]
    deadline = time.monotonic() + timeout
    pending = list(acknowledged)
    final: dict[str, str | None] = {}
    while pending and time.monotonic() < deadline:
        for intent in list(pending):
            status = await load.status(intent)
            wanted = {intent.expected} | ({"refunded"} if intent.expected == "completed" else set())
            if status in wanted and (not intent.refund_id or await _refund_done(load, intent)):
                final[intent.reference] = status
                pending.remove(intent)
        await asyncio.sleep(0.5)
    for intent in pending:
        figures.problems.append(
            f"{intent.reference} stuck in {await load.status(intent)}:"
            f" {await _diagnose(infra, intent)}"
        )

    conn = await asyncpg.connect(infra.database_url)
    try:
        ids = [uuid.UUID(i.payment_id) for i in acknowledged if i.payment_id]
        completed = [
            uuid.UUID(i.payment_id)
            for i in acknowledged
            if i.payment_id and i.expected == "completed"
        ]
        attempts = await conn.fetchval(
            "SELECT count(*) FROM (SELECT payment_id FROM connectors.provider_attempt"
            " WHERE payment_id = ANY($1::uuid[]) GROUP BY payment_id HAVING count(*) > 1) d",
            ids,
        )
        if attempts:
            figures.problems.append(f"{attempts} payments charged more than once")
        entries = await conn.fetch(
            "SELECT e.payment_id, e.refund_id, sum(p.amount_minor) AS total"
            " FROM ledger.journal_entry e JOIN ledger.posting p ON p.entry_id = e.id"
            " WHERE e.payment_id = ANY($1::uuid[]) GROUP BY e.id",
            ids,
        )
        unbalanced = [e for e in entries if e["total"] != 0]
        payment_entries = [e["payment_id"] for e in entries if e["refund_id"] is None]
        refunds = {uuid.UUID(i.refund_id) for i in acknowledged if i.refund_id}
        refund_entries = [e["refund_id"] for e in entries if e["refund_id"] is not None]
        if unbalanced:
            figures.problems.append(f"{len(unbalanced)} unbalanced entries")
        if sorted(payment_entries) != sorted(completed):
            figures.problems.append(
                f"ledger payment entries {len(payment_entries)} != completed {len(completed)}"
            )
        if sorted(refund_entries) != sorted(refunds):
            figures.problems.append(
                f"ledger refund entries {len(refund_entries)} != refunds {len(refunds)}"
            )
        figures.details.update(
            payments_completed=len(completed),
            refunds_completed=len(refunds),
            ledger_entries=len(entries),
        )
    finally:
        await conn.close()

    wanted = {(i.payment_id, f"collect.payment.{i.expected}") for i in acknowledged}

    async def arrived() -> set[tuple[Any, Any]]:
        seen = {
            (e["data"]["object"]["id"], e["type"])  # type: ignore[index]
            for e, _ in _verified(receiver, secrets)
        }
        return wanted - seen

    with contextlib.suppress(AssertionError):
        await wait_for(lambda: _none_missing(arrived), timeout=max(1, deadline - time.monotonic()))
    missing = await arrived()
    if missing:
        figures.problems.append(f"{len(missing)} terminal webhooks never arrived")
    events = [e for e, _ in _verified(receiver, secrets)]
    figures.details["webhook_requests"] = len(receiver.snapshot())
    figures.details["distinct_events"] = len({e["id"] for e in events})
    dead = {q: n for q, n in (await _dead_letters(infra.rabbitmq_url)).items() if n}
    if dead:
        figures.problems.append(f"dead letters: {dead}")


async def _diagnose(infra: Infra, intent: Intent) -> str:
    """Where a stuck payment stands in each service, for the report."""
    conn = await asyncpg.connect(infra.database_url)
    try:
        pid = uuid.UUID(intent.payment_id or "")
        attempt = await conn.fetchrow(
            "SELECT status, next_poll_at, updated_at FROM connectors.provider_attempt"
            " WHERE payment_id = $1",
            pid,
        )
        transitions = await conn.fetch(
            "SELECT from_status, to_status, reason, at FROM orchestrator.payment_transition"
            " WHERE payment_id = $1 ORDER BY id",
            pid,
        )
        unpublished = {
            schema: await conn.fetchval(
                f"SELECT count(*) FROM {schema}.outbox_message WHERE published_at IS NULL"
            )
            for schema in ("orchestrator", "connectors", "gateway")
        }
    finally:
        await conn.close()
    moves = [f"{t['from_status']}->{t['to_status']}({t['reason']})" for t in transitions]
    return f"attempt={dict(attempt) if attempt else None} moves={moves} unpublished={unpublished}"


async def _none_missing(arrived: Callable[[], Awaitable[set[Any]]]) -> bool:
    return not await arrived()


async def _refund_done(load: Load, intent: Intent) -> bool:
    response = await load.client_for(intent).get(f"/collect/payments/{intent.payment_id}")
    return response.status_code == 200 and response.json()["refunded_amount"] >= 1000


def receiver_with_switch() -> tuple[WebhookReceiver, dict[str, int]]:
    state = {"failing": 0}

    def respond(_: Received) -> int:
        return 503 if state["failing"] else 200

    return WebhookReceiver(respond=respond).start(), state


async def run_chaos(
    infra: Infra, stack: Stack, *, seconds: float, rate: float, gap: float, full: bool
) -> Figures:
    """Load for `seconds` at `rate` payments/s while faults fire `gap` seconds apart."""
    figures = Figures()
    receiver, receiver_state = receiver_with_switch()
    try:
        merchant = stack.admin("create-merchant", "--name", "Chaos", "--webhook-url", receiver.url)
        keys = merchant["api_keys"]
        assert isinstance(keys, dict)
        async with httpx.AsyncClient(
            base_url=f"{stack.base_url}/api/v1",
            headers={"Authorization": f"Bearer {keys['test']}"},
            timeout=15,
        ) as client:
            faults = [
                kill_and_restart(stack, name)
                for name in ("orchestrator", "connector-sandbox", "ledger", "webhooks", "gateway")
            ]
            faults.append(failing_receiver(receiver_state, 2 * gap))
            live_client = None
            if full:
                sim_url = add_psp(stack, "novasend").sim_url
                live_client = httpx.AsyncClient(
                    base_url=f"{stack.base_url}/api/v1",
                    headers={"Authorization": f"Bearer {keys['live']}"},
                    timeout=15,
                )
                sessions = "/v1/payin/sessions"
                faults += [
                    kill_and_restart(stack, "connector-novasend"),
                    psp_fault(
                        sim_url,
                        {"path": sessions, "kind": "slow", "delay_seconds": 4, "count": 10},
                        "Novasend answered the next 10 payins after 4 s",
                    ),
                    psp_fault(
                        sim_url,
                        {"path": sessions, "kind": "error", "status": 503, "count": 10},
                        "Novasend answered the next 10 payins 503",
                    ),
                    restart_rabbitmq(),
                    restart_postgres(client, figures),
                ]
            load = Load(client, figures, live_client=live_client)
            await asyncio.gather(load.run(seconds, rate), run_faults(faults, gap, figures))
            await load.settle(timeout=180)
            await verify(
                infra,
                load,
                receiver,
                list(merchant["webhook_secrets"].values()),  # type: ignore[union-attr]
                str(merchant["merchant_id"]),
                figures,
                timeout=180,
            )
            if live_client is not None:
                await live_client.aclose()
                charges = await psp_charges_per_payment(sim_url)
                doubled = {r: n for r, n in charges.items() if n > 1}
                live = [i for i in load.intents if i.live and i.payment_id]
                figures.details["psp_payments"] = len(live)
                figures.details["psp_sessions"] = sum(charges.values())
                if doubled:
                    figures.problems.append(f"PSP charged twice: {doubled}")
    finally:
        receiver.stop()
    return figures


def report(figures: Figures) -> str:
    lines = [
        f"payments intended {figures.intents}, acknowledged {figures.acknowledged}",
        f"retries after no answer or 5xx: {figures.create_retries} (5xx {figures.status_5xx},"
        f" of which 500: {figures.status_500})",
        *(f"fault: {f}" for f in figures.faults),
        *(f"{k}: {v}" for k, v in figures.details.items()),
        "problems: " + ("none" if not figures.problems else "; ".join(figures.problems[:20])),
    ]
    return "\n".join(lines)


def chaos_stack(infra: Infra, label: str, sandbox_delay: str, retry_schedule: str) -> Stack:
    """The platform as processes for a fault run, logs under artifacts/<label>-<hex>."""
    return Stack(
        infra,
        log_dir=ROOT / "artifacts" / f"{label}-{uuid.uuid4().hex[:6]}",
        extra_env={
            "FLUXPAY_SANDBOX_DELAY_SECONDS": sandbox_delay,
            "FLUXPAY_WEBHOOK_RETRY_SCHEDULE": retry_schedule,
            # Test and live events go to the local http receiver (development-only setting).
            "FLUXPAY_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS": "true",
        },
    )
