"""The `fluxpay` SDK against the running stack: every method that has a route, sync and
async, typed objects, cursor pages and typed errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fluxpay_testing.infra import wait_for

import fluxpay
from fluxpay.models import Balance, Event, EventSummary, Payment, Refund
from tests.e2e.sdk_support import async_client, bj, reach, sync_client
from tests.support.receiver import WebhookReceiver

pytestmark = pytest.mark.e2e


async def test_sync_client_creates_reads_and_refunds(stack, merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    client = sync_client(stack, merchant.test_key)
    payment = client.payments.create(**bj("000001"), description="SDK e2e")
    assert isinstance(payment, Payment) and payment.status in ("pending", "processing")
    assert payment.environment == "test" and not payment.idempotent_replay
    assert client.payments.retrieve(payment.reference).id == payment.id
    await reach(async_client(stack, merchant.test_key), payment.id, "completed")
    assert client.payments.retrieve(payment.id, sync=True).status == "completed"

    async def refunded() -> Refund | None:
        try:
            return client.refunds.create(payment.id, amount=1000, reason="requested_by_customer")
        except fluxpay.UnprocessableError as exc:  # the ledger books the payment a moment later
            assert exc.code == "insufficient_balance", exc
            return None

    refund = await wait_for(refunded, timeout=30, what="a refund the balance covers")
    assert isinstance(refund, Refund) and refund.payment_id == payment.id and refund.amount == 1000
    balance = client.balance.retrieve()
    assert isinstance(balance, Balance) and balance.environment == "test"
    assert [a.currency for a in balance.available] == ["XOF"]
    entries = list(client.balance.list_transactions(limit=1))
    assert payment.id in {e.payment_id for e in entries}
    client.close()


async def test_operator_catalogue(stack, merchant_factory) -> None:
    client = async_client(stack, merchant_factory("http://127.0.0.1:9/none").test_key)
    [benin] = await client.operators.list(country="BJ")
    by_code = {op.code: op for op in benin.operators}
    assert benin.currency == "XOF" and by_code["coris"].otp_required
    assert not by_code["mtn"].otp_required and by_code["mtn"].phone_prefixes


async def test_async_client_confirms_an_otp_and_cancels(stack, merchant_factory, receiver) -> None:
    client = async_client(stack, merchant_factory(receiver.url).test_key)
    otp = await client.payments.create(**{**bj("000001"), "operator": "coris"})
    assert otp.status == "awaiting_otp"
    assert otp.next_action and otp.next_action.type == "confirm_otp"
    with pytest.raises(fluxpay.UnprocessableError) as wrong:
        await client.payments.confirm(otp.id, otp="000000")
    assert (wrong.value.code, wrong.value.param) == ("otp_invalid", "otp")
    confirmed = await client.payments.confirm(otp.id, otp="123456")
    assert confirmed.status in ("processing", "completed")

    silent = await client.payments.create(**bj("000003"))
    cancelled = await client.payments.cancel(silent.id, reason="customer left")
    assert cancelled.status == "cancelled"
    with pytest.raises(fluxpay.ConflictError) as again:
        await client.payments.cancel(silent.id)
    assert again.value.code == "payment_not_cancellable"
    await client.aclose()


async def test_events_pages_replay_test_event_and_endpoint(
    stack, merchant_factory, receiver: WebhookReceiver
) -> None:
    merchant = merchant_factory(receiver.url)
    client = async_client(stack, merchant.test_key)
    started = datetime.now(UTC) - timedelta(minutes=1)
    payment = await client.payments.create(**bj("000001"))
    await reach(client, payment.id, "completed")

    async def three_events() -> list[str]:
        page = await client.events.list(limit=100).first_page()
        return [e.id for e in page.data] if len(page.data) >= 3 else []

    every = await wait_for(three_events, timeout=30, what="created, processing, completed")
    first = await client.events.list(limit=1).first_page()
    assert len(first.data) == 1 and first.has_more
    walked = [e.id async for e in client.events.list(limit=1)]
    assert walked == every  # one page at a time, newest first, none twice, none missed
    completed = [e async for e in client.events.list(type="collect.payment.completed")]
    assert all(isinstance(e, EventSummary) for e in completed) and len(completed) == 1

    event = await client.events.retrieve(completed[0].id)
    assert isinstance(event, Event) and event.data.object.id == payment.id
    assert event.type == "collect.payment.completed" and event.deliveries
    replay = await client.events.replay(event.id)
    assert replay.event_id == event.id
    assert (await client.events.replay_failed(since=started)).replayed == 0
    with pytest.raises(fluxpay.NotFoundError) as missing:
        await client.events.retrieve("evt_unknown")
    assert missing.value.code == "event_not_found"

    test_event = await client.webhooks.send_test_event()
    assert test_event.test and test_event.type == "collect.payment.completed"
    endpoint = await client.webhook_endpoint.retrieve()
    assert endpoint.url == receiver.url and endpoint.status == "enabled"
    moved = await client.webhook_endpoint.update(url=receiver.url + "/v2")
    assert moved.url == receiver.url + "/v2"
    rotated = await client.webhook_endpoint.rotate_secret()
    assert rotated.secret and rotated.secret != merchant.webhook_secret
    assert rotated.previous_secret_expires_at is not None
    await client.aclose()


async def test_errors_are_typed_with_the_api_error_fields(stack, merchant_factory) -> None:
    client = sync_client(stack, merchant_factory("http://127.0.0.1:9/none").test_key)
    with pytest.raises(fluxpay.InvalidRequestError) as invalid:
        client.payments.create(**{**bj("000001"), "amount": 50})
    error = invalid.value
    assert (error.http_status, error.code, error.param) == (400, "parameter_invalid", "amount")
    assert error.type == "invalid_request_error" and error.doc_url
    assert error.doc_url.endswith("#parameter_invalid") and error.request_id

    with pytest.raises(fluxpay.AuthenticationError) as unauthenticated:
        sync_client(stack, str(uuid.uuid4())).balance.retrieve()
    assert unauthenticated.value.code == "api_key_invalid"
    assert unauthenticated.value.http_status == 401

    with pytest.raises(fluxpay.NotFoundError) as not_found:
        client.payments.retrieve(f"no-such-{uuid.uuid4()}")
    assert (not_found.value.http_status, not_found.value.code) == (404, "payment_not_found")

    body = bj("000001")
    client.payments.create(**body)
    with pytest.raises(fluxpay.ConflictError) as duplicate:
        client.payments.create(**body)
    assert duplicate.value.code == "reference_already_exists"
    assert duplicate.value.http_status == 409

    key = str(uuid.uuid4())
    client.payments.create(**bj("000001"), idempotency_key=key)
    with pytest.raises(fluxpay.IdempotencyError) as reused:
        client.payments.create(**bj("000001"), idempotency_key=key)
    assert reused.value.code == "idempotency_key_reused"
    assert reused.value.type == "idempotency_error"


async def test_payment_and_refund_lists_walk_every_page(stack, merchant_factory) -> None:
    """`GET /collect/payments` and `/collect/payments/{id}/refunds`, page after page."""
    client = async_client(stack, merchant_factory("http://127.0.0.1:9/none").test_key)
    created = [await client.payments.create(**bj("000002")) for _ in range(3)]
    first = await client.payments.list(limit=2).first_page()
    assert len(first.data) == 2 and first.has_more
    listed = [p.id async for p in client.payments.list(limit=2)]
    assert [p.id for p in reversed(created)] == listed[:3]
    refunds = [r async for r in client.refunds.list(created[0].id)]
    assert refunds == []
