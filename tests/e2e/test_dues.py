"""Payment types and recurring dues through the running stack: each period's due issued
once per payer however often the scheduler runs (twice, across a restart of the gateway,
after a run the orchestrator could not finish), sent in a signed `collect.due.issued`
webhook with its hosted payment, paid through the checkout page or pushed on its date,
marked paid or overdue, listed by who paid."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fluxpay_testing.infra import wait_for

from tests.e2e.conftest import Merchant
from tests.e2e.test_api_keys import client_for
from tests.e2e.test_audit_log import entries
from tests.e2e.test_payment_links import pay_on_checkout
from tests.support.receiver import WebhookReceiver
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
PAYERS = (("Awa", "+22997000001"), ("Kofi", "+22996000002"))


def a_day_not_today() -> int:
    """A due day the background scheduler (running for today) never reaches in a test."""
    return datetime.now(UTC).day % 28 + 1


def next_due(day_of_month: int, months_ahead: int = 1) -> date:
    today = datetime.now(UTC).date()
    month = today.month - 1 + months_ahead
    return date(today.year + month // 12, month % 12 + 1, day_of_month)


async def payment_type(merchant: Merchant, **body: Any) -> dict[str, Any]:
    fields = {
        "name": "Cotisation",
        "amount": 2000,
        "currency": "XOF",
        "country": "BJ",
        "recurring": True,
        "interval": "monthly",
        "due_day": a_day_not_today(),
        **body,
    }
    # Optional fields are omitted, never null (the API's convention).
    fields = {name: value for name, value in fields.items() if value is not None}
    response = await merchant.client.post("/payment_types", json=fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def enroll(merchant: Merchant, type_id: str, payers=PAYERS) -> list[dict[str, Any]]:
    enrolled = []
    for name, phone in payers:
        response = await merchant.client.post(
            f"/payment_types/{type_id}/payers",
            json={"name": name, "phone": phone, "operator": "mtn"},
        )
        assert response.status_code == 201, response.text
        enrolled.append(response.json())
    return enrolled


async def run(merchant: Merchant, on: date) -> dict[str, Any]:
    response = await merchant.client.post("/dues/run", json={"date": on.isoformat()})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def dues(merchant: Merchant, **params: Any) -> list[dict[str, Any]]:
    response = await merchant.client.get("/dues", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def issued_events(receiver: WebhookReceiver, merchant: Merchant) -> list[dict[str, Any]]:
    return [
        e
        for e, _ in receiver.verified_events(merchant.webhook_secret)
        if e["type"] == "collect.due.issued" and e["merchant_id"] == merchant.id
    ]


async def one_event_per_due(
    receiver: WebhookReceiver, merchant: Merchant, expected: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    wanted = {d["id"] for d in expected}

    async def all_arrived() -> list[dict[str, Any]] | None:
        events = issued_events(receiver, merchant)
        return events if {e["data"]["due"]["id"] for e in events} >= wanted else None

    events = await wait_for(all_arrived, timeout=30, what="a collect.due.issued per due")
    counts = Counter(e["data"]["due"]["id"] for e in events)
    assert set(counts) == wanted and set(counts.values()) == {1}, counts
    return events


async def due_payments(merchant: Merchant) -> list[dict[str, Any]]:
    response = await merchant.client.get(
        "/collect/payments", params={"reference_prefix": "due-", "limit": 100}
    )
    return list(response.json()["data"])


async def test_a_period_is_issued_once_across_runs_and_a_gateway_restart(
    stack: Stack, merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    kind = await payment_type(merchant)
    await enroll(merchant, kind["id"])
    on = next_due(kind["due_day"])
    assert (await run(merchant, on - timedelta(days=1)))["issued"] == 0
    assert (await run(merchant, on))["issued"] == 2
    again = await run(merchant, on)
    assert (again["recorded"], again["issued"]) == (0, 0)
    stack.kill("gateway", signal.SIGTERM)
    stack.start_service("gateway")
    stack.wait_ready()
    assert (await run(merchant, on))["issued"] == 0

    issued = await dues(merchant, payment_type_id=kind["id"])
    assert len(issued) == 2 and {d["period"] for d in issued} == {f"{on:%Y-%m}"}
    assert {d["payer"]["name"] for d in issued} == {"Awa", "Kofi"}
    assert all(d["status"] == "issued" and d["checkout_url"] for d in issued)
    events = await one_event_per_due(receiver, merchant, issued)
    sent = {e["data"]["due"]["id"]: e["data"]["object"] for e in events}
    assert all(p["mode"] == "hosted" and p["checkout_url"] for p in sent.values())
    payments = await due_payments(merchant)
    assert sorted(p["id"] for p in payments) == sorted(d["payment_id"] for d in issued)

    # The next period is a new due for each payer.
    assert (await run(merchant, next_due(kind["due_day"], 2)))["issued"] == 2
    assert len(await dues(merchant, payment_type_id=kind["id"])) == 4


async def test_a_run_the_orchestrator_could_not_finish_is_finished_by_the_next(
    stack: Stack, merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    kind = await payment_type(merchant)
    await enroll(merchant, kind["id"])
    on = next_due(kind["due_day"])
    stack.kill("orchestrator", signal.SIGKILL)
    try:
        stopped = await merchant.client.post(
            "/dues/run", json={"date": on.isoformat()}, timeout=120
        )
        assert stopped.status_code == 200, stopped.text
        assert (stopped.json()["recorded"], stopped.json()["issued"]) == (2, 0)
        assert {d["status"] for d in await dues(merchant)} == {"issuing"}
    finally:
        stack.start_service("orchestrator")
    # The gateway restarts meanwhile too: nothing of the stopped run lived in its memory.
    stack.kill("gateway", signal.SIGKILL)
    stack.start_service("gateway")
    stack.wait_ready()

    async def finished() -> list[dict[str, Any]] | None:
        # Any run finishes what a stopped one recorded: this one, or the gateway's own
        # background run at start-up, whichever comes first.
        outcome = await run(merchant, on)
        assert outcome["recorded"] == 0
        found = await dues(merchant)
        return found if {d["status"] for d in found} == {"issued"} else None

    await wait_for(finished, timeout=60, what="the stopped run finished")
    issued = await dues(merchant)
    assert {d["status"] for d in issued} == {"issued"}
    await one_event_per_due(receiver, merchant, issued)
    assert len(await due_payments(merchant)) == 2


async def test_paid_dues_are_listed_by_who_paid_and_the_unpaid_become_overdue(
    stack: Stack, merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    kind = await payment_type(merchant)
    await enroll(merchant, kind["id"])
    on = next_due(kind["due_day"])
    await run(merchant, on)
    awa = next(d for d in await dues(merchant) if d["payer"]["name"] == "Awa")
    await pay_on_checkout(stack, awa["payment_id"], "+22997000001")

    async def paid() -> list[dict[str, Any]] | None:
        found = await dues(merchant, status="paid")
        return found or None

    [who_paid] = await wait_for(paid, timeout=30, what="Awa's due paid")
    assert who_paid["payer"]["name"] == "Awa" and who_paid["paid_at"]
    assert (await run(merchant, on + timedelta(days=1)))["overdue"] == 1
    [late] = await dues(merchant, status="overdue")
    assert late["payer"]["name"] == "Kofi"
    cancelled = await merchant.client.post(f"/dues/{late['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = await merchant.client.post(f"/dues/{who_paid['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "due_not_cancellable"


async def test_push_dues_ask_the_payer_on_the_due_date(
    stack: Stack, merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    kind = await payment_type(merchant, delivery="push")
    await enroll(merchant, kind["id"], payers=(("Awa", "+22997000001"),))
    assert (await run(merchant, next_due(kind["due_day"])))["issued"] == 1

    async def paid() -> list[dict[str, Any]] | None:
        return await dues(merchant, status="paid") or None

    [due] = await wait_for(paid, timeout=30, what="the pushed due paid")
    [event] = await one_event_per_due(receiver, merchant, [due])
    assert event["data"]["object"]["mode"] == "direct"


async def test_one_off_types_weekly_days_and_bad_input(merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    one_off = await payment_type(
        merchant, recurring=False, interval=None, due_day=None, due_date="2031-01-15"
    )
    assert one_off["recurring"] is False and one_off["due_date"] == "2031-01-15"
    await enroll(merchant, one_off["id"], payers=(("Awa", "+22997000001"),))
    assert (await run(merchant, date(2031, 1, 14)))["issued"] == 0
    assert (await run(merchant, date(2031, 2, 1)))["issued"] == 1
    assert [d["period"] for d in await dues(merchant)] == ["once"]
    base = {"name": "x", "amount": 1000, "currency": "XOF", "country": "BJ", "recurring": True}
    monthly = {**base, "interval": "monthly", "due_day": 3}
    for body, param in (
        ({**base, "interval": "weekly", "due_day": 8}, "due_day"),
        ({**base, "due_day": 3}, "interval"),
        ({**monthly, "due_date": "2031-01-01"}, "due_date"),
        ({**monthly, "currency": "RWF"}, "currency"),
        ({**monthly, "amount": 0}, "amount"),
        ({**base, "recurring": False}, "due_date"),
    ):
        response = await merchant.client.post("/payment_types", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["param"] == param
    wrong_phone = await merchant.client.post(
        f"/payment_types/{one_off['id']}/payers",
        json={"name": "Bad", "phone": "+22990", "operator": "mtn"},
    )
    assert wrong_phone.status_code == 400
    twice = await merchant.client.post(
        f"/payment_types/{one_off['id']}/payers",
        json={"name": "Awa again", "phone": "+229 97 00 00 01", "operator": "mtn"},
    )
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "payer_already_enrolled"


async def test_read_only_keys_read_dues_but_change_nothing_and_changes_are_audited(
    stack: Stack, merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    kind = await payment_type(merchant)
    [payer] = await enroll(merchant, kind["id"], payers=(("Awa", "+22997000001"),))
    created = await merchant.client.post("/api_keys", json={"name": "ro", "role": "read_only"})
    async with client_for(stack, created.json()["secret"]) as read_only:
        assert (await read_only.get(f"/api/v1/payment_types/{kind['id']}")).status_code == 200
        assert (await read_only.get("/api/v1/dues")).status_code == 200
        for method, path in (
            ("post", "/api/v1/payment_types"),
            ("delete", f"/api/v1/payment_types/{kind['id']}"),
            ("post", f"/api/v1/payment_types/{kind['id']}/payers"),
            ("delete", f"/api/v1/payment_types/{kind['id']}/payers/{payer['id']}"),
            ("post", "/api/v1/dues/run"),
        ):
            refused = await read_only.request(method, path, json={})
            assert refused.status_code == 403, (method, path, refused.text)
    async with client_for(stack, merchant.live_key) as live:
        refused = await live.post("/api/v1/dues/run", json={"date": "2031-01-01"})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "test_key_required"
        assert (await live.get(f"/api/v1/payment_types/{kind['id']}")).status_code == 404
    gone = await merchant.client.delete(f"/payment_types/{kind['id']}")
    assert gone.status_code == 200 and gone.json()["active"] is False
    assert (await run(merchant, next_due(kind["due_day"])))["issued"] == 0
    actions = [e["action"] for e in await entries(merchant)]
    assert {"payment_type.created", "payer.enrolled", "payment_type.deactivated"} <= set(actions)
