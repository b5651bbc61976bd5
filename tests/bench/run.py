"""`make bench`: drive the running stack as merchants would and print what it carries.

Starts the whole platform as processes (as `make up` does) in its own database and vhost,
with the sandbox customer's delay at its default (1 s, as a merchant sees it; `--sandbox-delay
0` measures the platform alone), then:
1. measures the bare infrastructure's ceiling (asyncpg transactions/s, RabbitMQ msgs/s);
2. API create alone: concurrent merchants creating payments as fast as answered;
3. end to end at a steady offered rate: create -> completed -> signed webhook received;
   or, with `--overload`, `--overload-factor` times that rate for `--overload-seconds`, then
   nothing: how fast the API answers (or refuses) and whether every accepted payment
   completes once the load drops.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import orjson
from fluxpay_testing.infra import Infra, isolated_infra

from tests.bench import cpu, profile, sqlstats
from tests.bench.infra_ceiling import asyncpg_transactions_per_second, rabbitmq_messages_per_second
from tests.bench.rawhttp import RawClient
from tests.support.receiver import WebhookReceiver
from tests.support.stack import ROOT, Stack


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    accepted_latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    # Refusals (any status but 201) by status, and how many of them said when to retry.
    refusals: dict[int, int] = field(default_factory=dict)
    with_retry_after: int = 0
    offer_ended: float = 0.0
    # (sent at, seconds to answer, status or error name) per create, for a timeline.
    timeline: list[tuple[float, float, str]] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def refused(self, response: httpx.Response) -> None:
        self.refusals[response.status_code] = self.refusals.get(response.status_code, 0) + 1
        self.with_retry_after += "retry-after" in response.headers
        self.error(f"HTTP {response.status_code}")

    def timeouts(self) -> int:
        return sum(n for what, n in self.errors.items() if "Timeout" in what)


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
        tally.timeline.append((started, time.monotonic() - started, type(exc).__name__))
        return
    tally.latencies.append(time.monotonic() - started)
    tally.timeline.append((started, tally.latencies[-1], str(response.status_code)))
    if response.status_code != 201:
        tally.refused(response)
        return
    tally.accepted_latencies.append(tally.latencies[-1])
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
    tally.offer_ended = time.monotonic()
    await asyncio.gather(*tasks)
    return tally


async def open_loop_elsewhere(client_args: dict[str, Any], seconds: float, rate: float) -> Tally:
    """The open loop in a process of its own (`python -m tests.bench.run --open-loop`), so
    it shares no GIL with the webhook receiver's threads; its CPU still counts as the load
    generator's (a child this process waits for)."""
    job = orjson.dumps(
        {"client": client_args, "seconds": seconds, "rate": rate}
    )  # fmt: skip
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bench.run", "--open-loop", job.decode(),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"the load generator exited {child.returncode}")
    return tally_from_json(out)


def open_loop_child(job: dict[str, Any]) -> None:
    async def run() -> Tally:
        # One connection per request in flight: a slow answer never queues the next request
        # in the load generator (that wait would be the client's, not the API's).
        client = RawClient(**job["client"])
        try:
            return await open_loop(client, job["seconds"], job["rate"])  # type: ignore[arg-type]
        finally:
            await client.aclose()

    tally = dataclasses.asdict(asyncio.run(run()))
    sys.stdout.buffer.write(orjson.dumps(tally, option=orjson.OPT_NON_STR_KEYS))


def tally_from_json(raw: bytes) -> Tally:
    fields = orjson.loads(raw)
    fields["refusals"] = {int(k): v for k, v in fields["refusals"].items()}
    fields["timeline"] = [tuple(row) for row in fields["timeline"]]
    return Tally(**fields)


def webhook_arrivals(receiver: WebhookReceiver, secret: str) -> dict[str, float]:
    arrivals: dict[str, float] = {}
    for event, received in receiver.verified_events(secret):
        if event["type"] == "collect.payment.completed":
            arrivals.setdefault(event["data"]["object"]["id"], received.at)
    return arrivals


def completed_ids(receiver: WebhookReceiver) -> set[str]:
    """Payments whose completed webhook arrived, signatures unchecked (cheap, for polling)."""
    ids = set()
    for received in receiver.snapshot():
        if b'"collect.payment.completed"' in received.body:
            ids.add(orjson.loads(received.body)["data"]["object"]["id"])
    return ids


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
    delay = (
        {}
        if args.sandbox_delay is None
        else {"FLUXPAY_SANDBOX_DELAY_SECONDS": str(args.sandbox_delay)}
    )
    stack = Stack(
        infra,
        log_dir=ROOT / "artifacts" / f"bench-{uuid.uuid4().hex[:6]}",
        extra_env={
            **delay,
            **dict(args.env),
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
        client_args: dict[str, Any] = {
            "base_url": f"{stack.base_url}/api/v1",
            "headers": {"Authorization": f"Bearer {key}"},
            "timeout": args.client_timeout,
        }
        async with httpx.AsyncClient(**client_args, limits=limits) as client:
            await closed_loop(client, 2, 4)  # warm-up
            if args.overload:
                api = Tally()
            else:
                print(f"API create alone for {args.api_seconds}s...", flush=True)
                api = await closed_loop(client, args.api_seconds, args.concurrency)
            # The API phase's payments finish first, so the end-to-end window measures only its own.
            await drain(receiver, api, args.drain_seconds)
            rate, seconds = offered(args)
            print(f"end to end at {rate}/s for {seconds}s...", flush=True)
            postings_before = await count_rows(
                infra.database_url, "SELECT count(*) FROM ledger.posting"
            )
            pids = {name: process.pid for name, process in stack.processes.items()}
            backends = await cpu.database_backends(infra.database_url)
            cpu_before = cpu.snapshot(pids, backends)
            sql_before = await sqlstats.snapshot(infra.database_url)
            profilers = {
                name: profile.start(pids[name], seconds, stack.log_dir / f"{name}.collapsed")
                for name in args.profile
            }
            window_start = time.monotonic()
            e2e = await open_loop_elsewhere(client_args, seconds, rate)
            # An overload's backlog drains after the load stops: give it the time it took.
            await drain(receiver, e2e, args.drain_seconds + (seconds if args.overload else 0))
            window = time.monotonic() - window_start
            # Every webhook request of the window (created, processing, completed), retries too.
            requests = sum(1 for r in receiver.snapshot() if r.at >= window_start)
            # A backend gone since is read as 0; one opened since counts whole (it is new).
            backends += await cpu.database_backends(infra.database_url)
            cpu_after = cpu.snapshot(pids, sorted(set(backends)))
            sql_after = await sqlstats.snapshot(infra.database_url)
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
        (window, requests, e2e.offer_ended),
        stack.log_dir,
        (cpu_before, cpu_after),
        (sql_before, sql_after),
    )


def offered(args: argparse.Namespace) -> tuple[float, float]:
    """The end-to-end phase's offered rate and length."""
    if args.overload:
        return args.rate * args.overload_factor, args.overload_seconds
    return args.rate, args.duration


async def drain(receiver: WebhookReceiver, tally: Tally, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if tally.started.keys() <= completed_ids(receiver):
            return
        await asyncio.sleep(0.5)


def report(
    args,
    api,
    e2e,
    receiver,
    secret,
    pg_tps,
    mq_mps,
    postings,
    window_requests,
    logs,
    cpu_window,
    sql_window=(None, None),
) -> dict[str, Any]:
    window, requests, load_end = window_requests
    arrivals = webhook_arrivals(receiver, secret)
    e2e_lat = [arrivals[p] - t for p, t in e2e.started.items() if p in arrivals]
    delivered = len(e2e_lat)
    rate, seconds = offered(args)
    e2e_rate = delivered / seconds
    last = max((arrivals[p] for p in e2e.started if p in arrivals), default=load_end)
    first = min(e2e.started.values(), default=load_end)
    rows = [
        ("sandbox customer delay (s)", "default (1)" if args.sandbox_delay is None
         else str(args.sandbox_delay)),
        *api_rows(args, api),
        ("end-to-end offered (payments/s)", f"{rate:.0f} for {seconds:.0f} s"
         + (f" ({args.overload_factor:g} x {args.rate:g})" if args.overload else "")),
        ("end-to-end accepted (201)", str(len(e2e.started))),
        ("end-to-end completed+webhook (payments/s)", f"{e2e_rate:.1f}"),
        ("  the same, first create to last completed webhook",
         f"{delivered / max(last - first, 1e-9):.1f}"),
        ("E2E phase API create p50 / p95 / p99 (ms), every answer", ms3(e2e.latencies)),
        ("E2E phase API create p50 / p95 / p99 (ms), 201 only", ms3(e2e.accepted_latencies)),
        ("create-to-completed-webhook p50 / p95 / p99 (ms)", ms3(e2e_lat)),
        ("refusals by status (with Retry-After)",
         f"{dict(sorted(e2e.refusals.items())) or 0} ({e2e.with_retry_after})"),
        ("timeouts (no answer within the client timeout)", str(e2e.timeouts())),
        ("accepted payments not completed after drain", str(len(e2e.started) - delivered)),
        ("last completed webhook, s after the offer stopped", f"{last - load_end:.1f}"),
        ("ledger postings/s (e2e window)", f"{postings / window:.0f}"),
        ("webhook deliveries/s (every event type)", f"{requests / window:.0f}"),
        ("errors (API phase)", str(api.errors or 0)),
        ("errors (E2E phase)", str(e2e.errors or 0)),
        ("infra: asyncpg transactions/s", f"{pg_tps.per_second:.0f}"),
        ("infra: machine CPU per transaction (ms; 4 round trips)", f"{pg_tps.cpu_ms_each:.2f}"),
        ("infra: RabbitMQ publish+consume msgs/s", f"{mq_mps.per_second:.0f}"),
        ("infra: machine CPU per message (ms)", f"{mq_mps.cpu_ms_each:.2f}"),
        ("platform e2e / asyncpg ceiling", f"{e2e_rate / pg_tps.per_second:.1%}"),
        ("platform e2e / RabbitMQ ceiling", f"{e2e_rate / mq_mps.per_second:.1%}"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    print()
    print(f"{'measure'.ljust(width)} | value")
    print(f"{'-' * width}-|{'-' * 24}")
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")
    print(
        f"\nsettings: 1 process per service, API concurrency {args.concurrency}, "
        f"webhook endpoint concurrency {args.webhook_concurrency}, settings "
        f"{dict(args.env) or 'default'} (e.g. FLUXPAY_PREFETCH, FLUXPAY_DB_POOL_MAX); "
        f"logs in {logs}"
    )
    cpu_rows = cpu.per_payment_ms(*cpu_window, delivered)
    print(
        "\nCPU per end-to-end payment (ms), from /proc over the end-to-end window"
        " (RabbitMQ is the whole broker: other users of the machine count too):"
    )
    for name, ms in cpu_rows:
        print(f"  {name.ljust(44)} {ms:6.1f}")
    sql_rows = sqlstats.per_payment(*sql_window, delivered)
    if sql_rows:
        print("\nSQL statements per end-to-end payment (pg_stat_statements, this database):")
        for text, n in sql_rows[:25]:
            print(f"  {n:6.2f}  {text[:110]}")
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
        "refusals": {str(status): n for status, n in e2e.refusals.items()},
        "refused_with_retry_after": e2e.with_retry_after,
        "cpu_ms_per_payment": dict(cpu_rows),
        "sql_statements_per_payment": dict(sql_rows),
        "profiles": profiles,
    }
    (ROOT / "artifacts" / "bench-last.json").write_bytes(orjson.dumps(figures))
    first_sent = min((t for t, _, _ in e2e.timeline), default=0.0)
    (logs / "creates.csv").write_text(
        "sent_at_s,answer_ms,status\n"
        + "".join(f"{t - first_sent:.3f},{d * 1000:.1f},{st}\n" for t, d, st in e2e.timeline)
    )
    return figures


def api_rows(args: argparse.Namespace, api: Tally) -> list[tuple[str, str]]:
    if args.overload:
        return []
    return [
        ("API create alone (201/s)", f"{len(api.started) / args.api_seconds:.0f}"),
        ("API create p50 / p95 / p99 (ms), every answer", ms3(api.latencies)),
        ("API create alone: refusals by status", f"{dict(sorted(api.refusals.items())) or 0}"),
    ]


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
        "--sandbox-delay",
        type=float,
        default=None,
        help="the sandbox customer's delay in seconds (default: the connector's own, 1 s)",
    )
    parser.add_argument(
        "--overload",
        action="store_true",
        help="offer --overload-factor x --rate for --overload-seconds instead of --rate for"
        " --duration, then stop and drain (the API phase is skipped)",
    )
    parser.add_argument("--overload-factor", type=float, default=3)
    parser.add_argument("--overload-seconds", type=float, default=60)
    parser.add_argument("--client-timeout", type=float, default=30, help="per create, seconds")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        type=lambda s: tuple(s.split("=", 1)),
        metavar="FLUXPAY_X=VALUE",
        help="a setting for every platform process (e.g. FLUXPAY_PREFETCH=100); repeatable",
    )
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
    if sys.argv[1:2] == ["--open-loop"]:
        open_loop_child(orjson.loads(sys.argv[2]))
        return
    args = parse_args()
    # The database and vhost are made (and dropped) outside the benchmark's event loop.
    with isolated_infra() as infra:
        asyncio.run(bench(args, infra))


if __name__ == "__main__":
    main()
