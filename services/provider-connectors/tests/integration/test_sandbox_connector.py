"""The sandbox connector against the real RabbitMQ and PostgreSQL: commands in, updates out."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fluxpay_testing.infra import Infra, wait_for

from fluxpay_common import topology
from fluxpay_common.ids import utcnow
from fluxpay_common.messages import (
    CancelAtProvider,
    InitiatePayment,
    ProviderPaymentUpdate,
    RefundAtProvider,
    SubmitOtp,
    SyncStatus,
    provider_update_id,
)
from fluxpay_common.rpc import RpcClient
from provider_connectors.adapters import repository as repo
from provider_connectors.service_layer.updates import new_attempt

pytestmark = pytest.mark.usefixtures("sandbox_worker")


@pytest.fixture(scope="module")
async def rpc(infra: Infra, sandbox_worker):  # type: ignore[no-untyped-def]
    client = RpcClient(
        infra.rabbitmq_url, topology.COMMANDS.name, topology.connector_key("sandbox")
    )
    await client.start()
    yield client
    await client.stop()


def _scoped(cmd: InitiatePayment, kind: type, **fields: object):  # type: ignore[no-untyped-def]
    return kind(
        correlation_id=cmd.correlation_id,
        payment_id=cmd.payment_id,
        merchant_id=cmd.merchant_id,
        environment=cmd.environment,
        provider=cmd.provider,
        **fields,
    )


async def test_approving_number_publishes_processing_then_completed_with_fee(
    publish_command, provider_updates, make_initiate
) -> None:
    cmd = make_initiate("+22997000001")
    await publish_command(cmd)
    completed = await provider_updates.wait_status(cmd.payment_id, "completed")
    assert provider_updates.statuses(cmd.payment_id) == ["processing", "completed"]
    assert completed.psp_reference and completed.psp_reference.startswith("sbx_")
    assert completed.fee_minor == 3000  # 1 % of 300 000 minor units
    assert completed.charged_amount_minor == 300_000
    assert completed.correlation_id == cmd.correlation_id
    keys = [k for k, _ in provider_updates.payment_updates(cmd.payment_id)]
    assert keys == ["provider.sandbox.processing", "provider.sandbox.completed"]
    # Numbered, for the orchestrator to apply them in this order whatever its concurrency.
    updates = [u for _, u in provider_updates.payment_updates(cmd.payment_id)]
    assert [u.sequence for u in updates] == [1, 2]
    assert [u.message_id for u in updates] == [
        provider_update_id(cmd.payment_id, 1),
        provider_update_id(cmd.payment_id, 2),
    ]


async def test_refusing_number_fails_with_insufficient_funds(
    publish_command, provider_updates, make_initiate
) -> None:
    cmd = make_initiate("+22997000002")
    await publish_command(cmd)
    failed = await provider_updates.wait_status(cmd.payment_id, "failed")
    assert provider_updates.statuses(cmd.payment_id) == ["processing", "failed"]
    assert failed.failure_code == "insufficient_funds"
    assert failed.fee_minor is None and failed.psp_reference is None


async def test_silent_number_stays_processing_and_is_not_polled(
    publish_command, provider_updates, make_initiate, connectors_db, rpc
) -> None:
    cmd = make_initiate("+22997000003")
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "processing")
    row = await connectors_db.fetchrow(
        "SELECT status, next_poll_at FROM provider_attempt WHERE payment_id = $1", cmd.payment_id
    )
    assert row["status"] == "processing" and row["next_poll_at"] is None
    reply = await rpc.call(_scoped(cmd, SyncStatus), ProviderPaymentUpdate, timeout=10)
    assert reply.status == "processing"


async def test_otp_round_trip_over_rpc(
    publish_command, provider_updates, make_initiate, rpc, outbox_keys
) -> None:
    cmd = make_initiate("+22997000001", operator="coris")
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "awaiting_otp")

    wrong = await rpc.call(_scoped(cmd, SubmitOtp, otp="999999"), ProviderPaymentUpdate, 10)
    assert wrong.status == "awaiting_otp"
    assert wrong.failure_code == "otp_invalid" and wrong.otp_attempts_left == 2
    # No status change: the wrong code is answered, not published.
    assert await outbox_keys(cmd.payment_id) == ["provider.sandbox.awaiting_otp"]

    right = await rpc.call(_scoped(cmd, SubmitOtp, otp="123456"), ProviderPaymentUpdate, 10)
    assert right.status == "completed" and right.fee_minor == 3000
    published = await provider_updates.wait_status(cmd.payment_id, "completed")
    # The reply and the published update are the same message: the orchestrator dedups.
    assert published.message_id == right.message_id


async def test_otp_before_the_push_started_changes_nothing(
    make_initiate, rpc, sandbox_worker, connectors_db, outbox_keys
) -> None:
    """A connector restarted between storing the attempt and starting the push: the OTP is
    answered `otp_not_ready`, never `processing` (which would strand the payment)."""
    cmd = make_initiate("+22997000001", operator="coris")
    engine = sandbox_worker.worker.engine
    async with connectors_db.acquire() as conn:
        assert await repo.insert_attempt(conn, new_attempt(cmd, engine.clock(), engine.lease))
    reply = await rpc.call(_scoped(cmd, SubmitOtp, otp="123456"), ProviderPaymentUpdate, 10)
    assert reply.status == "awaiting_otp" and reply.failure_code == "otp_not_ready"
    assert await outbox_keys(cmd.payment_id) == []


async def test_otp_that_overtakes_its_initiate_starts_the_push_and_is_checked(
    make_initiate, rpc, sandbox_worker, connectors_db, outbox_keys
) -> None:
    """The initiate comes through the orchestrator's outbox, the OTP directly: under load the
    OTP comes first. It carries the initiate, so the push starts and the code is checked;
    the initiate arriving afterwards starts nothing twice."""
    cmd = make_initiate("+22997000001", operator="coris")
    wrong = await rpc.call(
        _scoped(cmd, SubmitOtp, otp="999999", initiate=cmd), ProviderPaymentUpdate, 10
    )
    assert wrong.status == "awaiting_otp"
    assert wrong.failure_code == "otp_invalid" and wrong.otp_attempts_left == 2
    right = await rpc.call(
        _scoped(cmd, SubmitOtp, otp="123456", initiate=cmd), ProviderPaymentUpdate, 10
    )
    assert right.status == "completed" and right.fee_minor == 3000
    await sandbox_worker.worker.engine.handle(cmd)  # the outbox's initiate, late
    assert await outbox_keys(cmd.payment_id) == [
        "provider.sandbox.awaiting_otp",
        "provider.sandbox.completed",
    ]
    count = await connectors_db.fetchval(
        "SELECT count(*) FROM provider_attempt WHERE payment_id = $1", cmd.payment_id
    )
    assert count == 1


async def test_sync_that_overtakes_its_initiate_starts_the_push(
    make_initiate, rpc, sandbox_worker, outbox_keys
) -> None:
    cmd = make_initiate("+22997000003")
    reply = await rpc.call(_scoped(cmd, SyncStatus, initiate=cmd), ProviderPaymentUpdate, 10)
    assert reply.status == "processing" and reply.failure_code is None
    await sandbox_worker.worker.engine.handle(cmd)  # the outbox's initiate, late
    assert await outbox_keys(cmd.payment_id) == ["provider.sandbox.processing"]


async def test_requests_about_a_payment_never_received_are_answered_at_once(
    make_initiate, rpc, outbox_keys
) -> None:
    """Without a copy of the initiate, a clear retryable answer, never silence."""
    cmd = make_initiate("+22997000001", operator="coris")
    otp = await rpc.call(_scoped(cmd, SubmitOtp, otp="123456"), ProviderPaymentUpdate, 10)
    assert otp.status == "awaiting_otp" and otp.failure_code == "otp_not_ready"
    sync = await rpc.call(_scoped(cmd, SyncStatus), ProviderPaymentUpdate, 10)
    assert sync.failure_code == "attempt_not_started"
    # A copy naming another payment is not started either.
    other = make_initiate("+22997000001", operator="coris")
    stray = _scoped(cmd, SubmitOtp, otp="123456", initiate=other)
    assert (await rpc.call(stray, ProviderPaymentUpdate, 10)).failure_code == "otp_not_ready"
    assert await outbox_keys(cmd.payment_id) == []
    assert await outbox_keys(other.payment_id) == []


async def test_three_wrong_otps_fail_the_payment(
    publish_command, provider_updates, make_initiate, rpc
) -> None:
    cmd = make_initiate("+22997000001", operator="coris")
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "awaiting_otp")
    replies = [
        await rpc.call(_scoped(cmd, SubmitOtp, otp="000000"), ProviderPaymentUpdate, 10)
        for _ in range(3)
    ]
    assert [r.otp_attempts_left for r in replies[:2]] == [2, 1]
    assert replies[2].status == "failed"
    assert replies[2].failure_code == "otp_attempts_exceeded"
    failed = await provider_updates.wait_status(cmd.payment_id, "failed")
    assert failed.message_id == replies[2].message_id


async def test_redelivered_initiate_starts_nothing_twice(
    publish_command, provider_updates, make_initiate, sandbox_worker, connectors_db, outbox_keys
) -> None:
    cmd = make_initiate("+22997000001")
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "completed")
    engine = sandbox_worker.worker.engine
    await engine.handle(cmd)  # the same message delivered again
    await engine.handle(cmd.model_copy(update={"message_id": uuid.uuid4()}))  # a repeat
    assert await outbox_keys(cmd.payment_id) == [
        "provider.sandbox.processing",
        "provider.sandbox.completed",
    ]
    count = await connectors_db.fetchval(
        "SELECT count(*) FROM provider_attempt WHERE payment_id = $1", cmd.payment_id
    )
    assert count == 1
    assert provider_updates.statuses(cmd.payment_id) == ["processing", "completed"]


async def test_cancel_stops_the_customer_for_good(
    publish_command, provider_updates, make_initiate, connectors_db, worker_factory
) -> None:
    cmd = make_initiate("+22997000001")
    # Initiate on a worker whose customer takes long, so the cancel lands first.
    slow = await worker_factory(sandbox_delay_seconds=30)
    try:
        await slow.worker.engine.handle(cmd)
    finally:
        await slow.stop()
    await publish_command(_scoped(cmd, CancelAtProvider))
    await provider_updates.wait_status(cmd.payment_id, "cancelled")
    row = await connectors_db.fetchrow(
        "SELECT status, next_poll_at FROM provider_attempt WHERE payment_id = $1", cmd.payment_id
    )
    assert row["status"] == "cancelled" and row["next_poll_at"] is None


async def test_late_success_arrives_after_the_platforms_cancel(
    publish_command, provider_updates, make_initiate, outbox_keys
) -> None:
    cmd = make_initiate("+22997000005", expires_at=utcnow() + timedelta(seconds=1))
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "processing")
    cancelled_at = utcnow()
    await publish_command(_scoped(cmd, CancelAtProvider))
    completed = await provider_updates.wait_status(cmd.payment_id, "completed")
    assert completed.occurred_at >= cancelled_at + timedelta(seconds=0.3)  # the delay
    assert completed.fee_minor == 3000
    assert await outbox_keys(cmd.payment_id) == [
        "provider.sandbox.processing",
        "provider.sandbox.completed",
    ]


async def _completed_payment(publish_command, provider_updates, make_initiate, phone: str):  # type: ignore[no-untyped-def]
    cmd = make_initiate(phone)
    await publish_command(cmd)
    done = await provider_updates.wait_status(cmd.payment_id, "completed")
    return cmd, done


async def test_refund_completes_after_the_delay(
    publish_command, provider_updates, make_initiate
) -> None:
    cmd, done = await _completed_payment(
        publish_command, provider_updates, make_initiate, "+22997000001"
    )
    refund_id = uuid.uuid4()
    refund = _scoped(
        cmd,
        RefundAtProvider,
        refund_id=refund_id,
        amount=1000,
        currency="XOF",
        psp_reference=done.psp_reference,
    )
    await publish_command(refund)
    await publish_command(refund)  # redelivered: still one refund update

    async def settled():  # type: ignore[no-untyped-def]
        return provider_updates.refunds(cmd.payment_id)

    updates = await wait_for(settled, what="the refund update")
    assert [u.status for u in updates] == ["completed"]
    assert updates[0].refund_id == refund_id and updates[0].psp_reference


async def test_refund_of_000004_is_declined(
    publish_command, provider_updates, make_initiate
) -> None:
    cmd, _ = await _completed_payment(
        publish_command, provider_updates, make_initiate, "+22997000004"
    )
    refund = _scoped(cmd, RefundAtProvider, refund_id=uuid.uuid4(), amount=3000, currency="XOF")
    await publish_command(refund)

    async def settled():  # type: ignore[no-untyped-def]
        return provider_updates.refunds(cmd.payment_id)

    [declined] = await wait_for(settled, what="the refund update")
    assert declined.status == "failed" and declined.failure_code == "refund_declined"


async def test_refund_of_an_unknown_payment_fails_clearly(
    publish_command, provider_updates, make_initiate
) -> None:
    ghost = make_initiate("+22997000001")
    refund = _scoped(ghost, RefundAtProvider, refund_id=uuid.uuid4(), amount=10, currency="XOF")
    await publish_command(refund)

    async def settled():  # type: ignore[no-untyped-def]
        return provider_updates.refunds(ghost.payment_id)

    [refused] = await wait_for(settled, what="the refund refusal")
    assert refused.status == "failed" and refused.failure_code == "payment_not_found"


async def test_updates_go_to_the_relay_right_after_their_commit(
    publish_command, provider_updates, make_initiate, connectors_db
) -> None:
    cmd = make_initiate("+22997000001")
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "completed")

    async def rows():  # type: ignore[no-untyped-def]
        found = await connectors_db.fetch(
            "SELECT direct, published_at FROM outbox_message"
            " WHERE convert_from(body, 'UTF8')::jsonb ->> 'payment_id' = $1",
            str(cmd.payment_id),
        )
        return found if all(r["published_at"] for r in found) else None

    # Handed over in-process (no NOTIFY, not the sweep) and marked published after.
    found = await wait_for(rows, what="the updates marked published")
    assert [r["direct"] for r in found] == [True, True]
