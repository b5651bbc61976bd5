"""Payment and refund lists and the CSV export through the running stack: filters, keyset
pages that hold while payments arrive, the merchant's and environment's scope, and a CSV
that Python's `csv` module (as a spreadsheet) reads back with the right sums."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import Merchant
from tests.e2e.test_collect_api import _balance_covers, create, reach

pytestmark = pytest.mark.e2e


async def listed(merchant: Merchant, path: str = "/collect/payments", **params: Any) -> Any:
    response = await merchant.client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def ids(page: dict[str, Any]) -> list[str]:
    return [p["id"] for p in page["data"]]


async def test_pages_hold_while_payments_arrive_between_them(merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    prefix = f"page-{uuid.uuid4().hex[:8]}-"
    created = [await create(merchant, "+22997000003", reference=f"{prefix}{i}") for i in range(5)]
    newest_first = [p["id"] for p in reversed(created)]
    first = await listed(merchant, limit=2, reference_prefix=prefix)
    assert ids(first) == newest_first[:2] and first["has_more"]
    # Payments created between two pages come before the first page, never into the next.
    late = [await create(merchant, "+22997000003", reference=f"{prefix}late{i}") for i in range(3)]
    second = await listed(merchant, limit=2, reference_prefix=prefix, starting_after=ids(first)[-1])
    third = await listed(merchant, limit=2, reference_prefix=prefix, starting_after=ids(second)[-1])
    assert ids(second) + ids(third) == newest_first[2:]
    assert not third["has_more"]
    assert not {p["id"] for p in late} & set(ids(second) + ids(third))
    again = await listed(merchant, limit=10, reference_prefix=prefix)
    assert ids(again) == [p["id"] for p in reversed(late)] + newest_first


async def test_filters_by_status_operator_provider_country_currency_and_dates(
    merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    paid = await create(merchant, "+22997000001")
    refused = await create(merchant, "+22997000002")
    start = datetime.now(UTC) - timedelta(minutes=1)
    await reach(merchant, paid["id"], "completed")
    await reach(merchant, refused["id"], "failed")
    assert ids(await listed(merchant, status="completed")) == [paid["id"]]
    assert ids(await listed(merchant, status="failed")) == [refused["id"]]
    both = [refused["id"], paid["id"]]
    assert ids(await listed(merchant, operator="mtn", country="BJ", currency="XOF")) == both
    assert ids(await listed(merchant, provider="sandbox")) == both
    assert ids(await listed(merchant, country="TG")) == []
    assert ids(await listed(merchant, reference_prefix=paid["reference"])) == [paid["id"]]
    now = datetime.now(UTC)
    assert ids(await listed(merchant, created_gte=start.isoformat())) == both
    assert ids(await listed(merchant, created_lt=start.isoformat())) == []
    assert ids(await listed(merchant, created_gte=now.isoformat())) == []


async def test_lists_are_scoped_to_the_merchant_and_the_environment(
    merchant_factory, receiver
) -> None:
    mine, theirs = merchant_factory(receiver.url), merchant_factory(receiver.url)
    my_payment = await create(mine, "+22997000003")
    their_payment = await create(theirs, "+22997000003")
    assert ids(await listed(mine)) == [my_payment["id"]]
    live = merchant_factory(receiver.url, environment="live")
    assert ids(await listed(live)) == []
    # Another merchant's payment is no cursor of this list.
    response = await mine.client.get(
        "/collect/payments", params={"starting_after": their_payment["id"]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_starting_after"


async def test_bad_list_parameters_are_refused_with_their_name(merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    for params, param in (
        ({"status": "paid"}, "status"),
        ({"created_gte": "yesterday"}, "created_gte"),
        ({"limit": "0"}, "limit"),
        ({"starting_after": "not-an-id"}, "starting_after"),
        ({"colour": "red"}, "colour"),
    ):
        response = await merchant.client.get("/collect/payments", params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["error"]["param"] == param


async def test_refunds_are_listed_for_the_merchant_and_per_payment(
    merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    paid = await create(merchant, "+22997000001")
    other = await create(merchant, "+22997000003")
    await reach(merchant, paid["id"], "completed")
    await _balance_covers(merchant, 1000 * 100)
    refund = await merchant.client.post(
        f"/collect/payments/{paid['id']}/refunds",
        json={"amount": 1000},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert refund.status_code == 201, refund.text
    by_payment = await listed(merchant, f"/collect/payments/{paid['reference']}/refunds")
    assert ids(by_payment) == [refund.json()["id"]]
    assert by_payment["data"][0]["reference"] == paid["reference"]
    assert ids(await listed(merchant, f"/collect/payments/{other['id']}/refunds")) == []
    assert ids(await listed(merchant, "/collect/refunds")) == [refund.json()["id"]]
    assert ids(await listed(merchant, "/collect/refunds", operator="moov")) == []
    missing = await merchant.client.get("/collect/payments/no-such-order/refunds")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "payment_not_found"


async def test_export_csv_streams_the_range_with_amounts_fees_and_net(
    merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    start = datetime.now(UTC) - timedelta(minutes=1)
    formula = await create(merchant, "+22997000001", description='=HYPERLINK("http://x")')
    amounts = [1000, 2500, 4000]
    paid = [formula] + [await create(merchant, "+22997000001", amount=a) for a in amounts[1:]]
    for p in paid:
        await reach(merchant, p["id"], "completed")
    end = datetime.now(UTC) + timedelta(minutes=1)
    response = await merchant.client.get(
        "/collect/payments/export.csv",
        params={"created_gte": start.isoformat(), "created_lt": end.isoformat()},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert sorted(r["id"] for r in rows) == sorted(p["id"] for p in paid)
    assert {r["status"] for r in rows} == {"completed"}
    total_minor = sum(int(r["amount_minor"]) for r in rows)
    assert total_minor == (3000 + 2500 + 4000) * 100
    fees, net = sum(int(r["fee_minor"]) for r in rows), sum(int(r["net_minor"]) for r in rows)
    assert fees > 0 and fees + net == total_minor
    assert {r["provider"] for r in rows} == {"sandbox"}
    [cell] = [r["description"] for r in rows if r["id"] == formula["id"]]
    assert cell == '\'=HYPERLINK("http://x")'


async def test_export_pages_internally_through_a_range_longer_than_a_page(
    merchant_factory, receiver
) -> None:
    """More payments than one orchestrator page (500): all of them, each once. Hosted
    payments: nothing is pushed to a provider while they wait."""
    merchant = merchant_factory(receiver.url)
    start = datetime.now(UTC) - timedelta(minutes=1)
    prefix = f"bulk-{uuid.uuid4().hex[:8]}-"
    created = {
        (
            await create(
                merchant, "+22997000003", reference=f"{prefix}{i}", amount=100 + i, mode="hosted"
            )
        )["id"]
        for i in range(505)
    }
    response = await merchant.client.get(
        "/collect/payments/export.csv",
        params={
            "created_gte": start.isoformat(),
            "created_lt": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
            "reference_prefix": prefix,
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(rows) == len(created) and {r["id"] for r in rows} == created
    assert sum(int(r["amount"]) for r in rows) == sum(100 + i for i in range(505))


async def test_export_needs_a_date_range_and_is_no_payment_reference(
    merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    response = await merchant.client.get(
        "/collect/payments/export.csv", params={"created_gte": "2026-01-01T00:00:00Z"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        **response.json()["error"],
        "code": "parameter_missing",
        "param": "created_lt",
    }
