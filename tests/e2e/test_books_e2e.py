"""The books through the running stack: a merchant's day of sandbox payments and refunds ends
in the balance the payments imply, a statement listing every entry, and a reconciliation of
the orchestrator with the ledger that finds no difference."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import asyncpg
import pytest
from fluxpay_testing.infra import wait_for

from tests.e2e.conftest import Merchant, idempotency
from tests.e2e.test_collect_api import create, fetch, reach
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

APPROVES, DECLINES = "+22997000001", "+22997000002"
# Odd amounts: 1.5 % of each ends in exactly half a minor unit, so rounding half up shows.
COMPLETED = (1001, 2001, 3001, 4001, 5001, 7001)
FAILED = (2501, 6001)
PLATFORM_RATE = Decimal("0.015")  # the default schedule: 150 bp, no fixed part


def platform_fee_minor(amount: int) -> int:
    exact = Decimal(amount * 100) * PLATFORM_RATE
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


async def _pay(merchant: Merchant) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The batch: six payments the customer approves, two they decline."""
    approved = await asyncio.gather(*(create(merchant, APPROVES, amount=a) for a in COMPLETED))
    declined = await asyncio.gather(*(create(merchant, DECLINES, amount=a) for a in FAILED))
    await asyncio.gather(*(reach(merchant, p["id"], "completed") for p in approved))
    await asyncio.gather(*(reach(merchant, p["id"], "failed") for p in declined))
    return list(approved), list(declined)


async def _refund(merchant: Merchant, payment: dict[str, Any], amount: int | None) -> int:
    body = {} if amount is None else {"amount": amount, "reason": "returned"}
    response = await merchant.client.post(
        f"/collect/payments/{payment['id']}/refunds", json=body, headers=idempotency()
    )
    assert response.status_code == 201, response.text
    return int(response.json()["amount"])


async def _refunded(merchant: Merchant, payment: dict[str, Any], amount: int, status: str) -> None:
    async def settled() -> bool:
        current = await fetch(merchant, payment["id"])
        return current["refunded_amount"] == amount and current["status"] == status

    await wait_for(settled, timeout=30, what=f"{amount} refunded on {payment['id']} ({status})")


async def _balance_reaches(merchant: Merchant, amount_minor: int) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        response = await merchant.client.get("/balance")
        assert response.status_code == 200, response.text
        [xof] = response.json()["available"]
        return xof if xof["amount_minor"] == amount_minor else None

    balance: dict[str, Any] = await wait_for(
        probe, timeout=30, what=f"an available balance of {amount_minor} XOF minor"
    )
    return balance


async def _statement(merchant: Merchant, limit: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        response = await merchant.client.get("/balance/transactions", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        entries += page["data"]
        if not page["has_more"]:
            return entries
        params["starting_after"] = page["data"][-1]["id"]


async def _reconcile(stack: Stack, day: date, *scope: str) -> dict[str, Any]:
    """The day's report once it is clean. Other tests of this session share the day and the
    sandbox: their last events may still be on their way to the ledger, so a difference may
    be in flight for a moment; one that stays fails the test with the report's summary."""
    args = ["reconcile", "--day", day.isoformat(), "--provider", "sandbox", "--environment"]
    failures: list[str] = []

    async def clean() -> dict[str, Any] | None:
        try:
            return await asyncio.to_thread(stack.admin, *args, "test", *scope)
        except RuntimeError as exc:  # exit 1, its stderr summarizing every difference
            failures.append(str(exc))
            return None

    try:
        return await wait_for(clean, timeout=30, interval=1, what=f"a clean reconcile of {day}")
    except AssertionError as exc:
        raise AssertionError(failures[-1] if failures else str(exc)) from exc


async def test_balance_statement_and_reconciliation_agree_with_the_payments(
    stack: Stack, merchant_factory, receiver, db: asyncpg.Connection
) -> None:
    first_day = datetime.now(UTC).date()
    merchant = merchant_factory(receiver.url)
    approved, declined = await _pay(merchant)
    gross = sum(COMPLETED) * 100
    fees = sum(platform_fee_minor(a) for a in COMPLETED)
    # 1.5 % half up of 1001, 2001, 3001, 4001, 5001, 7001 XOF, in centimes.
    assert fees == 1502 + 3002 + 4502 + 6002 + 7502 + 10502
    # Refunds are paid from the available balance: every completion must be booked first.
    await _balance_reaches(merchant, gross - fees)

    whole, part, twice = approved[0], approved[1], approved[2]
    refunds = [
        await _refund(merchant, whole, None),
        await _refund(merchant, part, 500),
        await _refund(merchant, twice, 1000),
    ]
    await _refunded(merchant, twice, 1000, "completed")
    refunds.append(await _refund(merchant, twice, None))
    assert refunds == [1001, 500, 1000, 2001]
    await _refunded(merchant, whole, 1001, "refunded")
    await _refunded(merchant, part, 500, "completed")
    await _refunded(merchant, twice, 3001, "refunded")

    expected_minor = gross - fees - sum(refunds) * 100
    balance = await _balance_reaches(merchant, expected_minor)
    assert expected_minor == 2_200_600 - 33_012 - 450_200
    assert balance == {"currency": "XOF", "amount": 17_173, "amount_minor": 1_717_388}

    statement = await _statement(merchant, limit=100)
    assert statement == await _statement(merchant, limit=3)
    payments = {e["payment_id"]: e for e in statement if e["type"] == "payment"}
    assert set(payments) == {p["id"] for p in approved}
    assert not {p["id"] for p in declined} & {e["payment_id"] for e in statement}
    for payment in approved:
        entry = payments[payment["id"]]
        fee = platform_fee_minor(payment["amount"])
        assert (entry["amount_minor"], entry["fee_minor"], entry["net_minor"]) == (
            payment["amount"] * 100,
            fee,
            payment["amount"] * 100 - fee,
        )
    refund_entries = [e for e in statement if e["type"] == "refund"]
    assert sorted(e["amount_minor"] for e in refund_entries) == sorted(-r * 100 for r in refunds)
    assert sum(e["net_minor"] for e in statement) == expected_minor

    days = sorted({first_day, datetime.now(UTC).date()})
    everyone = [await _reconcile(stack, day) for day in days]
    assert all(r["differences"] == [] and r["problems"] == [] for r in everyone)
    assert sum(r["payments_checked"] for r in everyone) >= len(COMPLETED)
    mine = [await _reconcile(stack, day, "--merchant", merchant.id) for day in days]
    # Each movement belongs to exactly one day, the one the orchestrator completed it on.
    assert sum(r["payments_checked"] for r in mine) == len(COMPLETED)
    assert sum(r["refunds_checked"] for r in mine) == len(refunds)
    totals = [t for r in mine for t in r["totals"]]
    paid = [t for t in totals if t["kind"] == "payment"]
    assert sum(t["amount_minor"] for t in paid) == gross
    assert sum(t["platform_fee_minor"] for t in paid) == fees
    psp_fees = await db.fetchval(
        "SELECT coalesce(sum(fee_minor), 0) FROM orchestrator.payment WHERE id = ANY($1::uuid[])",
        [p["id"] for p in approved],
    )
    assert sum(t["psp_fee_minor"] for t in paid) == psp_fees
    refunded = sum(t["amount_minor"] for t in totals if t["kind"] == "refund")
    assert refunded == sum(refunds) * 100
