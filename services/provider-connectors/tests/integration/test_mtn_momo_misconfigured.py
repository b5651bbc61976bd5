"""MTN MoMo refunds when the disbursement product is not reachable (wrong base URL, product
not provisioned): the refund fails clearly after the retries instead of hanging pending."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fluxpay_testing.infra import free_port, wait_for

from fluxpay_common.messages import InitiatePayment, RefundAtProvider
from psp_simulators import mtn_momo


@pytest.fixture(scope="module")
async def mtn(worker_factory, http_server) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    port = free_port()
    sim = await http_server(
        mtn_momo.create_app(mtn_momo.MtnMomoConfig(delay_seconds=0.2, session_ttl_seconds=2)),
        port,
    )
    url = f"http://127.0.0.1:{port}"
    worker = await worker_factory(
        provider="mtn_momo",
        mtn_momo_base_url=url,
        mtn_momo_poll_seconds=0.3,
        connector_poll_lease_seconds=0.5,
        psp_timeout_seconds=0.5,
        psp_retry_attempts=2,
        psp_retry_backoff_seconds=0.05,
    )
    yield url
    await worker.stop()
    await sim.stop()


async def test_refund_whose_disbursement_token_is_404_fails_with_a_clear_reason(
    mtn: str, publish_command, provider_updates
):
    phone = "+22997000001"
    cmd = InitiatePayment(
        correlation_id="corr-misconfigured",
        payment_id=uuid.uuid4(),
        merchant_id=uuid.uuid4(),
        environment="live",
        provider="mtn_momo",
        reference=f"order-{uuid.uuid4()}",
        amount=5000,
        currency="XOF",
        country="BJ",
        operator="mtn",
        phone=phone,
        customer={"phone": phone, "name": "Kofi Mensah"},
    )
    await publish_command(cmd)
    done = await provider_updates.wait_status(cmd.payment_id, "completed")
    async with httpx.AsyncClient(base_url=mtn) as client:
        fault = {"method": "POST", "path": "/disbursement/token/", "status": 404, "count": 100}
        (await client.post("/_sim/faults", json=fault)).raise_for_status()
    await publish_command(
        RefundAtProvider(
            correlation_id=cmd.correlation_id,
            payment_id=cmd.payment_id,
            merchant_id=cmd.merchant_id,
            environment=cmd.environment,
            provider=cmd.provider,
            refund_id=uuid.uuid4(),
            amount=2000,
            currency=cmd.currency,
            psp_reference=done.psp_reference,
            phone=phone,
        )
    )

    async def settled():  # type: ignore[no-untyped-def]
        return provider_updates.refunds(cmd.payment_id)

    [refund] = await wait_for(settled, timeout=30, what="the refund to fail")
    assert refund.status == "failed"
    assert refund.failure_code == "provider_misconfigured"
    async with httpx.AsyncClient(base_url=mtn) as client:
        sent = (await client.get("/_sim/requests", params={"path": "/disbursement/v1_0"})).json()
    assert sent == []  # never reached MTN: failing it moves no money
