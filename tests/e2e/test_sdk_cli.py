"""The `fluxpay` CLI against the running stack: login, payments, `trigger` for every event
type of the seed's webhook, and `listen --forward-to` delivering signed events locally."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fluxpay_testing.infra import wait_for

from fluxpay.models import EVENT_TYPES
from tests.support.receiver import WebhookReceiver
from tests.support.stack import BIN, Stack

pytestmark = pytest.mark.e2e


def cli_env(stack: Stack, config_dir: Path, key: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXPAY_")}
    env.update({"FLUXPAY_BASE_URL": f"{stack.base_url}/api/v1",
                "FLUXPAY_CONFIG_DIR": str(config_dir), "PYTHONUNBUFFERED": "1"})  # fmt: skip
    if key:
        env["FLUXPAY_API_KEY"] = key
    return env


def fluxpay(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "fluxpay"), *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_login_keeps_a_test_key_private_and_refuses_a_live_one(
    stack, merchant_factory, tmp_path: Path
) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/none")
    env = cli_env(stack, tmp_path / "cfg")
    live = fluxpay(env, "login", "--api-key", merchant.live_key)
    assert live.returncode == 2 and "live key" in live.stderr
    assert not (tmp_path / "cfg" / "config.json").exists()

    logged = fluxpay(env, "login", "--api-key", merchant.test_key)
    assert logged.returncode == 0, logged.stderr
    stored = tmp_path / "cfg" / "config.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert json.loads(stored.read_text())["api_key"] == merchant.test_key

    created = fluxpay(env, "payments", "create", "--amount", "2500", "--phone", "+22997000001")
    assert created.returncode == 0, created.stderr
    payment = json.loads(created.stdout)
    assert payment["amount"] == 2500 and payment["environment"] == "test"
    got = fluxpay(env, "payments", "get", payment["reference"])
    assert got.returncode == 0 and json.loads(got.stdout)["id"] == payment["id"]
    missing = fluxpay(env, "payments", "get", "no-such-payment")
    assert missing.returncode == 1 and "payment_not_found" in missing.stderr


@pytest.mark.parametrize("event_type", EVENT_TYPES)
async def test_trigger_produces_the_event(
    stack, merchant_factory, receiver: WebhookReceiver, tmp_path: Path, event_type: str
) -> None:
    merchant = merchant_factory(receiver.url)
    result = fluxpay(cli_env(stack, tmp_path, merchant.test_key), "trigger", event_type)
    assert result.returncode == 0, result.stderr
    match = re.search(r"Created payment ([0-9a-f-]{36})", result.stdout)
    assert match, result.stdout
    payment_id = match.group(1)

    async def delivered() -> bool:
        return any(
            e["type"] == event_type and e["data"]["object"]["id"] == payment_id  # type: ignore[index]
            for e, _ in receiver.verified_events(merchant.webhook_secret)
        )

    await wait_for(delivered, timeout=60, what=f"signed {event_type} for {payment_id}")


def start_listen(env: dict[str, str], forward_to: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "fluxpay"), "listen", "--forward-to", forward_to],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


class Output:
    """A process's stdout lines, read on a thread as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        stream = process.stdout
        threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")),
                         daemon=True).start()  # fmt: skip


@pytest.fixture
def listening(stack, tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.terminate()
        process.wait(timeout=10)


async def test_listen_forwards_signed_events_to_a_local_server(
    stack, merchant_factory, tmp_path: Path, listening
) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/unreachable")  # no public endpoint needed
    local = WebhookReceiver(respond=lambda _: 204).start()
    headers = {"Authorization": f"Bearer {merchant.test_key}"}

    async def stream_open() -> bool:  # the dispatcher has the merchant's secret
        async with (
            httpx.AsyncClient(timeout=10) as http,
            http.stream("GET", f"{stack.base_url}/api/v1/events/stream", headers=headers) as answer,
        ):
            return answer.status_code == 200

    await wait_for(stream_open, timeout=30, what="the event stream to accept the merchant")
    process = start_listen(cli_env(stack, tmp_path, merchant.test_key), local.url)
    listening.append(process)
    output = Output(process)
    await wait_for(lambda: _async(any("Ready!" in line for line in output.lines)),
                   timeout=30, what="listen ready")  # fmt: skip
    try:
        triggered = fluxpay(cli_env(stack, tmp_path, merchant.test_key),
                            "trigger", "collect.payment.completed")  # fmt: skip
        assert triggered.returncode == 0, triggered.stderr

        async def forwarded_completed() -> list[dict[str, object]]:
            events = [e for e, _ in local.verified_events(merchant.webhook_secret)]
            return [e for e in events if e["type"] == "collect.payment.completed"]

        [event] = await wait_for(forwarded_completed, timeout=60, what="the forwarded event")
        received = next(r for r in local.snapshot() if str(event["id"]) in r.body.decode())
        assert received.headers["X-FluxPay-Event-Id"] == event["id"]

        async def printed() -> bool:
            return any(
                "collect.payment.completed" in line and str(event["id"]) in line and "204" in line
                for line in output.lines
            )

        await wait_for(printed, timeout=10, what="one line for the event with the local answer")
        # Only this merchant's events, each once.
        ids = [e["id"] for e, _ in local.verified_events(merchant.webhook_secret)]
        assert len(ids) == len(set(ids)) == len(local.snapshot())
    finally:
        local.stop()


async def _async(value: bool) -> bool:
    return value
