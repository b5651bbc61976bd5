"""CPU time per process, read from /proc, to say where a payment's CPU goes.

The benchmark reads each platform process (and RabbitMQ, PostgreSQL and itself) before and
after its end-to-end window; the difference divided by the payments completed is the CPU
each one spends per payment, which is what bounds throughput on a 2-core machine.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import asyncpg

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and of its children it has waited for; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # After the command: state is field 0; utime, stime, cutime, cstime are fields 11-14.
    return sum(int(v) for v in fields[11:15]) / _TICK


def pids_of(command: str) -> list[int]:
    found = subprocess.run(["pgrep", "-x", command], capture_output=True, text=True, check=False)
    return [int(line) for line in found.stdout.split()]


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (every core; idle and I/O wait left out)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / _TICK


async def database_backends(dsn: str) -> list[int]:
    """The PostgreSQL backends serving the benchmark's own database (the platform's pools)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [row["pid"] for row in rows]


def snapshot(platform: dict[str, int], backends: list[int]) -> dict[str, float]:
    """CPU seconds so far of each platform process, RabbitMQ, PostgreSQL and this process.

    The machine's PostgreSQL serves other users too: only the backends of the benchmark's
    database count as the platform's (the server's shared processes, WAL writer included,
    are shown apart and left out of the total). RabbitMQ is one process for every vhost, so
    its figure includes whatever else the broker carries at the time.
    """
    cpu = {name: process_cpu_seconds(pid) for name, pid in platform.items()}
    cpu["rabbitmq"] = sum(process_cpu_seconds(pid) for pid in pids_of("beam.smp"))
    ours = sum(process_cpu_seconds(pid) for pid in backends)
    cpu["postgresql (this database's backends)"] = ours
    everything = sum(process_cpu_seconds(pid) for pid in pids_of("postgres"))
    cpu[SHARED_POSTGRES] = everything - ours
    cpu[LOAD_GENERATOR] = process_cpu_seconds(os.getpid())
    return cpu


LOAD_GENERATOR = "load generator + receiver"
SHARED_POSTGRES = "postgresql, rest of the server (shared; not counted)"


def per_payment_ms(
    before: dict[str, float], after: dict[str, float], payments: int
) -> list[tuple[str, float]]:
    """Milliseconds of CPU per payment by process, largest first, with the platform's total."""
    if payments <= 0:
        return []
    rows = [(name, (after[name] - before.get(name, 0.0)) * 1000 / payments) for name in after]
    rows.sort(key=lambda row: -row[1])
    platform = sum(ms for name, ms in rows if name not in (LOAD_GENERATOR, SHARED_POSTGRES))
    return [*rows, ("platform total (all but the load generator)", platform)]
