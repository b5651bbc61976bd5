"""Live attempts that polling gave up on land in the review queue; an operator lists and
resolves them by asking the provider's connector over the broker (`fluxpay-admin`'s door),
and the resolution reaches the orchestrator as a normal provider update."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from fluxpay_testing.infra import Infra, free_port, wait_for

from fluxpay_common.ids import utcnow
from fluxpay_common.messages import (
    InitiatePayment,
    ListProviderReviews,
    Message,
    QueryReply,
    ResolveProviderReview,
)
from fluxpay_common.rpc import RpcClient
from fluxpay_common.topology import COMMANDS, connector_key
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


async def _ask(infra: Infra, request: Message, provider: str = "mtn_momo") -> QueryReply:
    """What `fluxpay-admin` does: a request/reply on the provider's connector key."""
    client = RpcClient(infra.rabbitmq_url, COMMANDS.name, connector_key(provider))
    await client.start()
    try:
        reply: QueryReply = await client.call(request, QueryReply, 10)
        return reply
    finally:
        await client.stop()


def _resolve(payment_id: uuid.UUID, outcome: str, reason: str, **extra: str) -> Message:
    return ResolveProviderReview(
        payment_id=payment_id,
        outcome=outcome,  # type: ignore[arg-type]
        reason=reason,
        actor=extra.pop("actor", "ops:awa"),
        **extra,
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

    listing = (await _ask(infra, ListProviderReviews())).data
    assert listing["provider"] == "mtn_momo" and listing["open_count"] >= 1
    assert str(cmd.payment_id) in {item["payment_id"] for item in listing["items"]}

    reason = "MTN statement line 4411 shows the debit"
    reply = await _ask(infra, _resolve(cmd.payment_id, "paid", reason, psp_reference="4411"))
    assert reply.error is None, reply.error
    assert reply.data["status"] == "completed" and reply.data["published"] is True
    assert reply.data["merchant_id"] == str(cmd.merchant_id)
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
    again = await _ask(infra, _resolve(cmd.payment_id, "failed", "again"))  # once, not twice
    assert again.error is not None and again.error.code == "review_already_resolved"
    listing = (await _ask(infra, ListProviderReviews())).data
    assert str(cmd.payment_id) not in {item["payment_id"] for item in listing["items"]}


async def test_an_operator_marks_an_unsettled_attempt_failed_with_a_reason(
    mtn: str, infra: Infra, publish_command, provider_updates, connectors_db
):
    cmd = _stale_payment()
    await publish_command(cmd)
    await wait_for(lambda: _queued(connectors_db, cmd.payment_id), what="the review entry")
    reply = await _ask(infra, _resolve(cmd.payment_id, "failed", "MTN: no such debit"))
    assert reply.error is None and reply.data["status"] == "failed"
    failed = await provider_updates.wait_status(cmd.payment_id, "failed")
    assert failed.failure_code == "manual_review_failed"
    assert "MTN: no such debit" in (failed.failure_message or "")


async def test_a_resolution_without_a_reason_is_refused_and_the_review_stays_open(
    mtn: str, infra: Infra, publish_command, connectors_db
):
    cmd = _stale_payment()
    await publish_command(cmd)
    await wait_for(lambda: _queued(connectors_db, cmd.payment_id), what="the review entry")
    reply = await _ask(infra, _resolve(cmd.payment_id, "paid", "   "))
    assert reply.error is not None
    assert (reply.error.code, reply.error.param) == ("parameter_missing", "reason")
    assert await _queued(connectors_db, cmd.payment_id)


async def test_a_connector_resolves_only_its_own_provider_reviews(
    mtn: str, infra: Infra, sandbox_worker, publish_command, connectors_db
):
    cmd = _stale_payment()
    await publish_command(cmd)
    await wait_for(lambda: _queued(connectors_db, cmd.payment_id), what="the review entry")
    # The sandbox connector is asked about an MTN review: not its queue, nothing changes.
    wrong = await _ask(infra, _resolve(cmd.payment_id, "paid", "statement"), "sandbox")
    assert wrong.error is not None and wrong.error.code == "review_not_found"
    sandbox_listing = (await _ask(infra, ListProviderReviews(), "sandbox")).data
    assert str(cmd.payment_id) not in {item["payment_id"] for item in sandbox_listing["items"]}
    assert await _queued(connectors_db, cmd.payment_id)
