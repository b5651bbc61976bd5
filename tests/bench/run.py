"""`make bench`: drive the running stack as merchants would and print what it carries.

Starts the whole platform as processes (as `make up` does) in its own database and vhost,
with the sandbox customer's delay at zero so latencies measure the platform, then:
1. measures the bare infrastructure's ceiling (asyncpg transactions/s, RabbitMQ msgs/s);
2. API create alone: concurrent merchants creating payments as fast as answered;
3. end to end at a steady offered rate: create -> completed -> signed webhook received.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import orjson
from fluxpay_testing.infra import Infra, isolated_infra

from tests.bench import cpu, profile
from tests.bench.infra_ceiling import asyncpg_transactions_per_second, rabbitmq_messages_per_second
from tests.support.receiver import WebhookReceiver
from tests.support.stack import ROOT, Stack


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def body() -> dict[str, object]:
    return {
        "reference": str(uuid.uuid4()),
        "amount": 3000,
        "currency": "XOF",
        "country": "BJ",
        "mode": "direct",
        "operator": "mtn",
        "customer": {"phone": "+22997000001"},
    }


async def create_one(client: httpx.AsyncClient, tally: Tally) -> None:
    started = time.monotonic()
    try:
        response = await client.post(
            "/collect/payments", json=body(), headers={"Idempotency-Key": str(uuid.uuid4())}
        )
    except httpx.HTTPError as exc:
        tally.error(type(exc).__name__)
        return
    tally.latencies.append(time.monotonic() - started)
    if response.status_code != 201:
        tally.error(f"HTTP {response.status_code}")
        return
    tally.started[response.json()["id"]] = started


async def closed_loop(client: httpx.AsyncClient, seconds: float, workers: int) -> Tally:
    tally = Tally()
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < deadline:
            await create_one(client, tally)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return tally


async def open_loop(client: httpx.AsyncClient, seconds: float, rate: float) -> Tally:
    """Offer `rate` creations per second whatever the answers' pace (no coordinated omission)."""
    tally = Tally()
    tasks: set[asyncio.Task[None]] = set()
    started = time.monotonic()
    sent = 0
    while (now := time.monotonic()) - started < seconds:
        due = int((now - started) * rate)
        for _ in range(due - sent):
            task = asyncio.create_task(create_one(client, tally))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent = max(sent, due)
        await asyncio.sleep(0.002)
    await asyncio.gather(*tasks)
    return tally


def webhook_arrivals(receiver: WebhookReceiver, secret: str) -> dict[str, float]:
    arrivals: dict[str, float] = {}
    for event, received in receiver.verified_events(secret):
        if event["type"] == "collect.payment.completed":
            arrivals.setdefault(event["data"]["object"]["id"], received.at)
    return arrivals


async def count_rows(dsn: str, sql: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def bench(args: argparse.Namespace, infra: Infra) -> dict[str, Any]:
    """Run the benchmark, print its table; the figures (as in artifacts/bench-last.json)."""
    print("measuring the bare infrastructure...", flush=True)
    pg_tps = await asyncpg_transactions_per_second(infra.database_url, args.infra_seconds)
    mq_mps = await rabbitmq_messages_per_second(
        infra.rabbitmq_url, count=int(4000 * args.infra_seconds)
    )
    receiver = WebhookReceiver().start()
    stack = Stack(
        infra,
        log_dir=ROOT / "artifacts" / f"bench-{uuid.uuid4().hex[:6]}",
        extra_env={
            "FLUXPAY_SANDBOX_DELAY_SECONDS": "0",
            "FLUXPAY_LOG_LEVEL": "WARNING",
            # The bench is one merchant: let its endpoint take more than the default 4 at once.
            "FLUXPAY_WEBHOOK_ENDPOINT_CONCURRENCY": str(args.webhook_concurrency),
            # The receiver is http on 127.0.0.1 (development-only switch).
            "FLUXPAY_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS": "true",
        },
    )
    stack.start()
    try:
        stack.wait_ready()
        merchant = stack.admin("create-merchant", "--name", "Bench", "--webhook-url", receiver.url)
        key = merchant["api_keys"]["test"]  # type: ignore[index]
        secret = str(merchant["webhook_secrets"]["test"])  # type: ignore[index]
        limits = httpx.Limits(max_connections=args.concurrency * 2)
        async with httpx.AsyncClient(
            base_url=f"{stack.base_url}/api/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
            limits=limits,
        ) as client:
            await closed_loop(client, 2, 4)  # warm-up
            print(f"API create alone for {args.api_seconds}s...", flush=True)
            api = await closed_loop(client, args.api_seconds, args.concurrency)
            # The API phase's payments finish first, so the end-to-end window measures only its own.
            await drain(receiver, secret, api, args.drain_seconds)
            print(f"end to end at {args.rate}/s for {args.duration}s...", flush=True)
            postings_before = await count_rows(
                infra.database_url, "SELECT count(*) FROM ledger.posting"
            )
            pids = {name: process.pid for name, process in stack.processes.items()}
            cpu_before = cpu.snapshot(pids)
            profilers = {
                name: profile.start(pids[name], args.duration, stack.log_dir / f"{name}.collapsed")
                for name in args.profile
            }
            window_start = time.monotonic()
            e2e = await open_loop(client, args.duration, args.rate)
            await drain(receiver, secret, e2e, args.drain_seconds)
            window = time.monotonic() - window_start
            # Every webhook request of the window (created, processing, completed), retries too.
            requests = sum(1 for r in receiver.snapshot() if r.at >= window_start)
            cpu_after = cpu.snapshot(pids)
            for profiler in profilers.values():
                profiler.wait(timeout=60)
            postings = (
                await count_rows(infra.database_url, "SELECT count(*) FROM ledger.posting")
                - postings_before
            )
    finally:
        stack.stop()
        receiver.stop()
    return report(
        args,
        api,
        e2e,
        receiver,
        secret,
        pg_tps,
        mq_mps,
        postings,
        (window, requests),
        stack.log_dir,
        (cpu_before, cpu_after),
    )


async def drain(receiver: WebhookReceiver, secret: str, tally: Tally, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if len(webhook_arrivals(receiver, secret).keys() & tally.started.keys()) >= len(
            tally.started
        ):
            return
        await asyncio.sleep(0.5)


def report(
    args, api, e2e, receiver, secret, pg_tps, mq_mps, postings, window_requests, logs, cpu_window
) -> dict[str, Any]:
    window, requests = window_requests
    arrivals = webhook_arrivals(receiver, secret)
    e2e_lat = [arrivals[p] - t for p, t in e2e.started.items() if p in arrivals]
    delivered = len(e2e_lat)
    api_rate = len(api.latencies) / args.api_seconds
    e2e_rate = delivered / args.duration
    rows = [
        ("API create alone (payments/s)", f"{api_rate:.0f}"),
        ("API create p50 / p95 / p99 (ms)", ms3(api.latencies)),
        ("end-to-end offered (payments/s)", f"{args.rate:.0f}"),
        ("end-to-end completed+webhook (payments/s)", f"{e2e_rate:.0f}"),
        ("E2E phase API create p50 / p95 / p99 (ms)", ms3(e2e.latencies)),
        ("create-to-webhook p50 / p95 / p99 (ms)", ms3(e2e_lat)),
        ("webhooks missing after drain", str(len(e2e.started) - delivered)),
        ("ledger postings/s (e2e window)", f"{postings / window:.0f}"),
        ("webhook deliveries/s (every event type)", f"{requests / window:.0f}"),
        ("errors (API phase)", str(api.errors or 0)),
        ("errors (E2E phase)", str(e2e.errors or 0)),
        ("infra: asyncpg transactions/s", f"{pg_tps:.0f}"),
        ("infra: RabbitMQ publish+consume msgs/s", f"{mq_mps:.0f}"),
        ("platform e2e / asyncpg ceiling", f"{e2e_rate / pg_tps:.1%}"),
        ("platform e2e / RabbitMQ ceiling", f"{e2e_rate / mq_mps:.1%}"),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    print(f"{'measure'.ljust(width)} | value")
    print(f"{'-' * width}-|{'-' * 24}")
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")
    print(
        f"\nsettings: 1 process per service, API concurrency {args.concurrency}, "
        f"sandbox delay 0, webhook endpoint concurrency {args.webhook_concurrency}, default "
        f"prefetch/pools (FLUXPAY_PREFETCH, FLUXPAY_DB_POOL_MAX); "
        f"logs in {logs}"
    )
    cpu_rows = cpu.per_payment_ms(*cpu_window, delivered)
    print("\nCPU per end-to-end payment (ms), from /proc over the end-to-end window:")
    for name, ms in cpu_rows:
        print(f"  {name.ljust(44)} {ms:6.1f}")
    profiles: dict[str, list[tuple[str, float, float]]] = {}
    for name in args.profile:
        collapsed = logs / f"{name}.collapsed"
        if not collapsed.exists():
            print(f"\nno profile of {name} (py-spy needs ptrace rights)")
            continue
        profiles[name] = profile.summarize(collapsed)
        print(f"\nprofile of {name} ({collapsed}): package, inclusive %, self %")
        for area, inclusive, own in profiles[name]:
            print(f"  {area.ljust(30)} {inclusive:6.1%} {own:6.1%}")
        print("  hottest functions (self %):")
        for frame, share in profile.hottest_frames(collapsed):
            print(f"    {share:6.1%}  {frame}")
    figures = {
        **dict(rows),
        "payments_offered": len(e2e.started) + sum(e2e.errors.values()),
        "payments_delivered": delivered,
        "cpu_ms_per_payment": dict(cpu_rows),
        "profiles": profiles,
    }
    (ROOT / "artifacts" / "bench-last.json").write_bytes(orjson.dumps(figures))
    return figures


def ms3(values: list[float]) -> str:
    return " / ".join(f"{percentile(values, p) * 1000:.0f}" for p in (50, 95, 99))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=60, help="end-to-end seconds")
    # What this 2-core machine sustains (README, Performance); offer more to see it saturate.
    parser.add_argument("--rate", type=float, default=25, help="offered payments/s end to end")
    parser.add_argument("--api-seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=16, help="API-alone workers")
    parser.add_argument("--drain-seconds", type=float, default=30)
    parser.add_argument("--webhook-concurrency", type=int, default=16)
    parser.add_argument("--infra-seconds", type=float, default=5, help="bare infra measure")
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="SERVICE",
        help="sample SERVICE (gateway, orchestrator, ledger, webhooks, connector-sandbox) with"
        " py-spy during the end-to-end window; repeatable",
    )
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    # The database and vhost are made (and dropped) outside the benchmark's event loop.
    with isolated_infra() as infra:
        asyncio.run(bench(args, infra))


if __name__ == "__main__":
    main()
