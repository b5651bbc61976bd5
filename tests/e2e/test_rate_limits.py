"""Rate limits shared by gateway instances: two more gateways on the stack's database, with
small limits, count one key's (and one client IP's) requests together."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fluxpay_testing.infra import free_port

from tests.support.stack import BIN, ROOT, Stack

pytestmark = pytest.mark.e2e
READ_LIMIT = 6
PUBLIC_LIMIT = 4
LIMITS = {
    # A day-long window: the test cannot straddle two windows in practice.
    "FLUXPAY_RATE_LIMIT_WINDOW_SECONDS": "86400",
    "FLUXPAY_RATE_LIMIT_READ": str(READ_LIMIT),
    "FLUXPAY_RATE_LIMIT_PUBLIC_PER_IP": str(PUBLIC_LIMIT),
}


@contextlib.contextmanager
def gateways(stack: Stack, count: int, env: dict[str, str]) -> Iterator[list[str]]:
    """`count` extra gateway processes sharing the stack's database and broker."""
    ports = [free_port() for _ in range(count)]
    processes = []
    for port in ports:
        log = (stack.log_dir / f"gateway-{port}.log").open("ab")
        process_env = {**stack.env(), **env, "FLUXPAY_GATEWAY_PORT": str(port)}
        processes.append(
            subprocess.Popen(
                [str(BIN / "fluxpay-gateway")],
                env=process_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        )
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url in urls:
            _wait_ready(url)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def _wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/v1/collect/openapi.json", timeout=1).is_success:
                return
        time.sleep(0.2)
    raise AssertionError(f"the extra gateway {url} did not answer within {timeout}s")


def assert_rate_limited(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    error = dict(response.json()["error"])
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    return error


async def test_key_limit_is_enforced_across_two_gateways(stack: Stack, merchant_factory) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/hook")
    headers = {"Authorization": f"Bearer {merchant.test_key}"}
    with gateways(stack, 2, LIMITS) as urls:
        async with httpx.AsyncClient(headers=headers, timeout=15) as client:
            answers = [
                await client.get(f"{urls[n % 2]}/api/v1/balance") for n in range(READ_LIMIT + 2)
            ]
            assert [a.status_code for a in answers[:READ_LIMIT]] == [200] * READ_LIMIT
            for refused in answers[READ_LIMIT:]:
                assert_rate_limited(refused)
            # Another class of the same key has its own budget.
            created = await client.post(f"{urls[0]}/api/v1/api_keys", json={"name": "ok"})
            assert created.status_code == 201, created.text
            # Another key of the same merchant too.
            other = {"Authorization": f"Bearer {created.json()['secret']}"}
            fresh = await client.get(f"{urls[1]}/api/v1/balance", headers=other)
            assert fresh.status_code == 200, fresh.text


async def test_public_pages_are_limited_per_client_ip_across_gateways(stack: Stack) -> None:
    with gateways(stack, 2, LIMITS) as urls:
        async with httpx.AsyncClient(timeout=15) as client:
            pages = [
                await client.get(f"{urls[n % 2]}/checkout/00000000-0000-4000-8000-000000000000")
                for n in range(PUBLIC_LIMIT + 1)
            ]
    # Only these gateways count in day-long windows: the first pages are the budget.
    assert [p.status_code for p in pages[:PUBLIC_LIMIT]] == [404] * PUBLIC_LIMIT
    assert_rate_limited(pages[-1])
