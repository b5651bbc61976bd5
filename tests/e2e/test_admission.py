"""Admission control: creates beyond the gateway's bound are refused at once, never queued.

A stack of its own (its own database and vhost, a gateway allowing one create in flight)
whose orchestrator is paused, so the one admitted create is held for as long as the test
needs: the others are refused while it waits, with 503, Retry-After and the seed's error
shape, and nothing of theirs is stored: retried with the same Idempotency-Key once the
platform answers again, each creates its payment.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait

import httpx
import pytest
from fluxpay_testing.infra import isolated_infra

from tests.support.stack import ROOT, ServiceSpec, Stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def one_create_at_a_time() -> Iterator[Stack]:
    with isolated_infra() as infra:
        stack = Stack(
            infra,
            log_dir=ROOT / "artifacts" / f"e2e-admission-{uuid.uuid4().hex[:6]}",
            extra_env={"FLUXPAY_CREATE_MAX_IN_FLIGHT": "1", "FLUXPAY_RPC_TIMEOUT": "60"},
            services=[
                ServiceSpec("gateway", ["fluxpay-gateway"]),
                ServiceSpec("orchestrator", ["fluxpay-orchestrator"]),
            ],
        )
        stack.start()
        try:
            stack.wait_ready()
            yield stack
        finally:
            stack.stop()


def payment(reference: str) -> dict[str, object]:
    return {
        "reference": reference,
        "amount": 1500,
        "currency": "XOF",
        "country": "BJ",
        "mode": "direct",
        "operator": "mtn",
        "customer": {"phone": "+22997000001"},
    }


def test_creates_beyond_the_bound_are_refused_while_the_admitted_one_waits(
    one_create_at_a_time: Stack,
) -> None:
    stack = one_create_at_a_time
    merchant = stack.admin("create-merchant", "--name", "Busy shop")
    key = merchant["api_keys"]["test"]  # type: ignore[index]
    client = httpx.Client(
        base_url=f"{stack.base_url}/api/v1",
        headers={"Authorization": f"Bearer {key}"},
        timeout=90,
    )
    keys = [str(uuid.uuid4()) for _ in range(4)]
    references = [f"busy-{uuid.uuid4().hex[:8]}" for _ in keys]

    def create(i: int) -> httpx.Response:
        return client.post(
            "/collect/payments", json=payment(references[i]), headers={"Idempotency-Key": keys[i]}
        )

    orchestrator = stack.processes["orchestrator"]
    orchestrator.send_signal(signal.SIGSTOP)  # holds whatever create is admitted
    try:
        with ThreadPoolExecutor(len(keys)) as pool:
            pending = [pool.submit(create, i) for i in range(len(keys))]
            # Three answers come back while the fourth is still held by the paused orchestrator.
            deadline = time.monotonic() + 30
            while sum(f.done() for f in pending) < 3 and time.monotonic() < deadline:
                wait(pending, timeout=0.1)
            refused = [(i, f.result()) for i, f in enumerate(pending) if f.done()]
            assert len(refused) == 3, refused
            held = next(f for f in pending if not f.done())
            orchestrator.send_signal(signal.SIGCONT)
            admitted = held.result(timeout=60)
    finally:
        orchestrator.send_signal(signal.SIGCONT)

    assert admitted.status_code == 201, admitted.text
    for _, response in refused:
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "1"
        error = response.json()["error"]
        assert error["code"] == "service_overloaded"
        assert error["type"] == "api_error"
        assert error["doc_url"].endswith("#service_overloaded")
    # Nothing of a refused create was kept: the same key and body now create the payment.
    for i, _ in refused:
        retried = create(i)
        assert retried.status_code == 201, retried.text
        assert retried.json()["reference"] == references[i]
        assert "Idempotent-Replayed" not in retried.headers
