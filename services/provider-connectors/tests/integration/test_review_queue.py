"""Live attempts that polling gave up on land in the review queue; an operator's resolution
reaches the orchestrator as a normal provider update."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from fluxpay_testing.infra import Infra, free_port, wait_for

from fluxpay_common.ids import utcnow
from fluxpay_common.messages import InitiatePayment
from provider_connectors.entrypoints.review import run_review_command
from provider_connectors.service_layer import review
from psp_simulators import mtn_momo


@pytest.fixture(scope="module")
async def mtn(worker_factory, http_server) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    port = free_port()
    config = mtn_momo.MtnMomoConfig(delay_seconds=0.2, session_ttl_seconds=600)
    sim = await http_server(mtn_momo.create_app(config), port)
    worker = await worker_factory(
        provider="mtn_momo",
        mtn_momo_base_url=f"http://127.0.0.1:{port}",
        mtn_momo_poll_seconds=0.3,
        psp_timeout_seconds=0.5,
        psp_retry_attempts=2,
        psp_retry_backoff_seconds=0.05,
    )
    yield f"http://127.0.0.1:{port}"
    await worker.stop()
    await sim.stop()


def _stale_payment() -> InitiatePayment:
    """A live payment whose late-success window is already over: the PSP's first answer
    (the customer has not approved) is the last one anybody asks for."""
    phone = "+22997000003"  # the customer never answers
    return InitiatePayment(
        correlation_id=f"corr-{uuid.uuid4().hex[:8]}",
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
        customer={"phone": phone},
        expires_at=utcnow() - timedelta(days=1, minutes=1),
    )


async def _queued(connectors_db, payment_id: uuid.UUID) -> bool:  # type: ignore[no-untyped-def]
    row = await connectors_db.fetchrow(
        "SELECT resolved_at FROM provider_review WHERE payment_id = $1", payment_id
    )
    return row is not None and row["resolved_at"] is None


async def test_unsettled_attempt_is_queued_and_an_operator_marks_it_paid(
    mtn: str, infra: Infra, publish_command, provider_updates, connectors_db
):
    cmd = _stale_payment()
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "processing")
    await wait_for(lambda: _queued(connectors_db, cmd.payment_id), what="the review entry")

    listing = await review.list_open(connectors_db, "mtn_momo")
    assert listing["open_count"] >= 1
    assert cmd.payment_id in {item["payment_id"] for item in listing["items"]}

    args = argparse.Namespace(
        command="resolve-review",
        payment_id=cmd.payment_id,
        outcome="paid",
        reason="MTN statement line 4411 shows the debit",
        actor="ops:awa",
        psp_reference="4411",
    )
    done = await run_review_command(infra.database_url, args)
    assert done["status"] == "completed" and done["published"] is True
    completed = await provider_updates.wait_status(cmd.payment_id, "completed")
    assert completed.psp_reference == "4411"
    row = await connectors_db.fetchrow(
        "SELECT resolution, resolution_reason, resolved_by FROM provider_review"
        " WHERE payment_id = $1",
        cmd.payment_id,
    )
    assert dict(row) == {
        "resolution": "completed",
        "resolution_reason": "MTN statement line 4411 shows the debit",
        "resolved_by": "ops:awa",
    }
    with pytest.raises(review.ReviewError):  # resolved once, never twice
        await review.resolve(connectors_db, cmd.payment_id, "failed", "again", "ops:awa")


async def test_an_operator_marks_an_unsettled_attempt_failed_with_a_reason(
    mtn: str, publish_command, provider_updates, connectors_db
):
    cmd = _stale_payment()
    await publish_command(cmd)
    await wait_for(lambda: _queued(connectors_db, cmd.payment_id), what="the review entry")
    await review.resolve(connectors_db, cmd.payment_id, "failed", "MTN: no such debit", "ops:k")
    failed = await provider_updates.wait_status(cmd.payment_id, "failed")
    assert failed.failure_code == "manual_review_failed"
    assert "MTN: no such debit" in (failed.failure_message or "")
