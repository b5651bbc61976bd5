"""Fixtures shared by the end-to-end and contract tiers: the whole stack as processes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from fluxpay_testing.infra import Infra

from tests.support.stack import ROOT, Stack

# Seconds a simulated customer takes to approve; short so journeys are quick.
SANDBOX_DELAY = "0.3"


@pytest.fixture(scope="session")
def stack(infra: Infra) -> Iterator[Stack]:
    run = os.environ.get("FLUXPAY_TEST_RUN", uuid.uuid4().hex[:8])
    stack = Stack(
        infra,
        log_dir=ROOT / "artifacts" / f"e2e-{run}",
        extra_env={
            "FLUXPAY_SANDBOX_DELAY_SECONDS": SANDBOX_DELAY,
            # 300 s, the API's shortest expiry, lasts 3 s in this run.
            "FLUXPAY_EXPIRY_TIME_SCALE": "0.01",
            "FLUXPAY_WEBHOOK_RETRY_SCHEDULE": "0,1,1,2,2,3,3,3",
            # The merchant receiver is http on 127.0.0.1, test and live events alike: the
            # development-only switch lifts the SSRF address rules (tests/e2e/
            # test_webhook_guard.py runs a stack without it).
            "FLUXPAY_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS": "true",
        },
    )
    stack.start()
    try:
        stack.wait_ready()
        yield stack
    finally:
        codes = stack.stop()
        bad = {name: code for name, code in codes.items() if code not in (0, -15)}
        assert not bad, f"services did not stop cleanly on SIGTERM: {bad}"
