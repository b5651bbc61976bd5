"""The SDK's merchant platform resources against the running stack, sync and async:
filtered payment and refund lists, API keys, payment links, payment types and dues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fluxpay_testing.infra import wait_for

import fluxpay
from fluxpay.models import ApiKey, Due, Payer, PaymentLink, PaymentType
from tests.e2e.sdk_support import async_client, bj, reach, sync_client
from tests.e2e.test_dues import a_day_not_today, next_due
from tests.e2e.test_payment_links import pay_on_checkout, payment_id_of, start_paying

pytestmark = pytest.mark.e2e


async def test_payments_are_listed_with_filters_and_pages(stack, merchant_factory) -> None:
    client = async_client(stack, merchant_factory("http://127.0.0.1:9/none").test_key)
    start = datetime.now(UTC) - timedelta(minutes=1)
    paid = await client.payments.create(**bj("000001"))
    open_ = [await client.payments.create(**bj("000003")) for _ in range(2)]
    await reach(client, paid.id, "completed")
    completed = [p.id async for p in client.payments.list(status="completed")]
    assert completed == [paid.id]
    walked = [p.id async for p in client.payments.list(limit=1, created_gte=start)]
    assert walked == [open_[1].id, open_[0].id, paid.id]
    assert [p async for p in client.payments.list(country="TG")] == []
    assert (await client.payments.list(provider="sandbox").first_page()).data[0].provider == (
        "sandbox"
    )
    assert [r async for r in client.refunds.list()] == []


def test_api_keys_are_created_listed_rotated_and_revoked(stack, merchant_factory) -> None:
    client = sync_client(stack, merchant_factory("http://127.0.0.1:9/none").test_key)
    key = client.api_keys.create(name="reporting", role="read_only")
    assert isinstance(key, ApiKey) and key.secret and key.role == "read_only"
    listed = {k.id: k for k in client.api_keys.list()}
    assert listed[key.id].secret is None and listed[key.id].name == "reporting"
    reader = sync_client(stack, key.secret)
    assert reader.balance.retrieve().environment == "test"
    with pytest.raises(fluxpay.PermissionDeniedError) as refused:
        reader.payment_links.create(amount=1000, currency="XOF", country="BJ")
    assert refused.value.code == "insufficient_permissions"
    rotated = client.api_keys.rotate(key.id, expires_in=0)
    assert rotated.secret and rotated.previous_key and rotated.previous_key.id == key.id
    client.api_keys.revoke(rotated.id)
    with pytest.raises(fluxpay.AuthenticationError):
        sync_client(stack, rotated.secret).balance.retrieve()


async def test_payment_links_through_the_async_client(stack, merchant_factory) -> None:
    merchant = merchant_factory("http://127.0.0.1:9/none")
    client = async_client(stack, merchant.test_key)
    link = await client.payment_links.create(
        amount=1200, currency="XOF", country="BJ", usage_limit=1, description="SDK"
    )
    assert isinstance(link, PaymentLink) and link.can_pay and link.url.endswith(link.slug)
    assert [found.id async for found in client.payment_links.list()] == [link.id]
    payment_id = payment_id_of(await start_paying(stack, link.slug))
    await pay_on_checkout(stack, payment_id, "+22997000001")
    await reach(client, payment_id, "completed")

    async def used() -> PaymentLink | None:
        found = await client.payment_links.retrieve(link.id)
        return found if found.usage_count == 1 else None

    counted = await wait_for(used, timeout=30, what="the link's use counted")
    assert counted.usage_limit_reached and not counted.can_pay
    assert (await client.payment_links.deactivate(link.id)).active is False
    with pytest.raises(fluxpay.NotFoundError) as missing:
        await client.payment_links.retrieve("00000000-0000-0000-0000-000000000000")
    assert missing.value.code == "payment_link_not_found"


def test_payment_types_payers_and_dues_through_the_sync_client(stack, merchant_factory) -> None:
    client = sync_client(stack, merchant_factory("http://127.0.0.1:9/none").test_key)
    kind = client.payment_types.create(
        name="Loyer",
        amount=5000,
        currency="XOF",
        country="BJ",
        recurring=True,
        interval="monthly",
        due_day=a_day_not_today(),
    )
    assert isinstance(kind, PaymentType) and kind.recurring and kind.delivery == "link"
    payer = client.payment_types.enroll_payer(
        kind.id, name="Awa", phone="+22997000001", operator="mtn"
    )
    assert isinstance(payer, Payer) and payer.phone == "+22997000001"
    assert [p.id for p in client.payment_types.list_payers(kind.id)] == [payer.id]
    on = next_due(kind.due_day or 1)
    assert client.dues.run(on).issued == 1
    assert client.dues.run(on).issued == 0
    [due] = list(client.dues.list(payment_type_id=kind.id))
    assert isinstance(due, Due) and due.status == "issued" and due.payer.name == "Awa"
    assert client.dues.retrieve(due.id).checkout_url == due.checkout_url
    assert client.dues.cancel(due.id).status == "cancelled"
    with pytest.raises(fluxpay.ConflictError):
        client.dues.cancel(due.id)
    assert client.payment_types.remove_payer(kind.id, payer.id).active is False
    assert client.payment_types.deactivate(kind.id).active is False
    assert [t.id for t in client.payment_types.list()] == [kind.id]
