"""Refunds are paid from the merchant's available balance, also when they race: ten
concurrent refunds on ten payments of one merchant never take that balance below zero."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fluxpay_testing.infra import wait_for

from tests.e2e.conftest import Merchant, idempotency, payment_body

pytestmark = pytest.mark.e2e


async def _completed_payment(merchant: Merchant, phone: str) -> dict[str, Any]:
    body = payment_body(phone, amount=1000)
    response = await merchant.client.post("/collect/payments", json=body, headers=idempotency())
    assert response.status_code == 201, response.text
    payment_id = response.json()["id"]

    async def completed() -> dict[str, Any] | None:
        payment = (await merchant.client.get(f"/collect/payments/{payment_id}")).json()
        return dict(payment) if payment["status"] == "completed" else None

    return await wait_for(completed, timeout=60, what=f"payment {payment_id} completed")


async def _available_minor(merchant: Merchant) -> int:
    balance = (await merchant.client.get("/balance")).json()
    return sum(b["amount_minor"] for b in balance["available"] if b["currency"] == "XOF")


async def _balance_reaches(merchant: Merchant, minor: int) -> None:
    async def probe() -> bool:
        return await _available_minor(merchant) == minor

    await wait_for(probe, timeout=60, what=f"an available balance of {minor} minor")


async def _refund(
    merchant: Merchant, payment: dict[str, Any], amount: int = 1000
) -> tuple[int, str | None]:
    response = await merchant.client.post(
        f"/collect/payments/{payment['id']}/refunds",
        json={"amount": amount},
        headers=idempotency(),
    )
    code = response.json()["error"]["code"] if response.status_code >= 400 else None
    return response.status_code, code


async def test_concurrent_refunds_never_overdraw_the_available_balance(
    merchant_factory, receiver
) -> None:
    merchant = merchant_factory(receiver.url)
    payments = await asyncio.gather(
        *(_completed_payment(merchant, "+22997000001") for _ in range(10))
    )
    # Ten 1 000 XOF sales leave 9 850 XOF after the platform's fee: nine refunds fit.
    await _balance_reaches(merchant, 10 * 1000 * 100 * 985 // 1000)
    outcomes = await asyncio.gather(*(_refund(merchant, p) for p in payments))
    assert sorted(outcomes, key=str) == sorted(
        [(201, None)] * 9 + [(422, "insufficient_balance")], key=str
    ), outcomes
    # The pending refunds are held on the balance at once, and booked without a change.
    assert await _available_minor(merchant) == 85_000

    async def nine_refunded_and_never_overdrawn() -> bool:
        assert await _available_minor(merchant) == 85_000
        refunded = [
            (await merchant.client.get(f"/collect/payments/{p['id']}")).json()["refunded_amount"]
            for p in payments
        ]
        return sorted(refunded) == [0] + [1000] * 9

    await wait_for(nine_refunded_and_never_overdrawn, timeout=60, what="nine refunds settled")


async def test_a_declined_refund_gives_its_hold_back(merchant_factory, receiver) -> None:
    merchant = merchant_factory(receiver.url)
    # Refunds of 000004 payments are declined by the sandbox.
    payment = await _completed_payment(merchant, "+22997000004")
    await _balance_reaches(merchant, 98_500)
    assert await _refund(merchant, payment, amount=900) == (201, None)
    # Held from the 201 until the sandbox's decline reaches the ledger, then given back.
    await _balance_reaches(merchant, 98_500)
    assert await _refund(merchant, payment, amount=900) == (201, None)
