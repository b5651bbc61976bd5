"""The poller's state is in the database: a restarted process finishes what the last began."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from fluxpay_testing.infra import Infra

from fluxpay_common.ids import utcnow

BIN = Path(sys.executable).parent


async def test_outcome_due_after_a_restart_is_still_published(
    publish_command, provider_updates, make_initiate, connectors_db, worker_factory
) -> None:
    first = await worker_factory(sandbox_delay_seconds=1.5)
    cmd = make_initiate("+22997000001")
    try:
        await publish_command(cmd)
        await provider_updates.wait_status(cmd.payment_id, "processing")
    finally:
        await first.stop()
    row = await connectors_db.fetchrow(
        "SELECT status, next_poll_at FROM provider_attempt WHERE payment_id = $1", cmd.payment_id
    )
    assert row["status"] == "processing"
    assert row["next_poll_at"] is not None and row["next_poll_at"] > utcnow()

    second = await worker_factory()
    try:
        completed = await provider_updates.wait_status(cmd.payment_id, "completed")
    finally:
        await second.stop()
    assert completed.psp_reference and provider_updates.statuses(cmd.payment_id) == [
        "processing",
        "completed",
    ]


async def test_console_script_serves_and_stops_cleanly_on_sigterm(
    infra: Infra, publish_command, provider_updates, make_initiate, tmp_path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXPAY_")}
    env.update(infra.env())
    env["FLUXPAY_SANDBOX_DELAY_SECONDS"] = "0.2"
    log_path = tmp_path / "connector.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(BIN / "fluxpay-connector"),
            "--provider",
            "sandbox",
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            cmd = make_initiate("+22997000002")
            await publish_command(cmd)
            failed = await provider_updates.wait_status(cmd.payment_id, "failed", timeout=30)
            assert failed.failure_code == "insufficient_funds"
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), timeout=30)
    assert code == 0, log_path.read_text()[-3000:]
