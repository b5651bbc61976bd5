"""Live payments through the whole stack to each real-PSP connector and its simulator.

The PSP simulators and connectors join the running stack as processes (`fluxpay-psp-sim`,
`fluxpay-connector --provider NAME --http-port N`); a merchant's live key is routed by the
orchestrator to the provider, whose simulated customer approves; the payment completes with
the PSP's reference and the ledger books it from the `collect.payment.completed` event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fluxpay_testing.infra import wait_for

from tests.e2e.conftest import idempotency
from tests.e2e.test_collect_api import webhook
from tests.support.receiver import WebhookReceiver
from tests.support.stack import Stack, add_psp

pytestmark = pytest.mark.e2e
PROVIDERS = ("novasend", "mtn_momo", "irembopay", "stripe")


@dataclass(frozen=True)
class Journey:
    provider: str
    country: str
    currency: str
    operator: str
    phone: str


JOURNEYS = {
    "mtn_momo": Journey("mtn_momo", "BJ", "XOF", "mtn", "+22997000001"),
    "novasend": Journey("novasend", "BJ", "XOF", "moov", "+22995000001"),
    "irembopay": Journey("irembopay", "RW", "RWF", "mtn", "+250788000001"),
    "stripe": Journey("stripe", "BJ", "XOF", "card", "+22997000001"),
}


@pytest.fixture(scope="module")
def psp_stack(stack: Stack) -> Iterator[dict[str, int]]:
    """Add every PSP simulator and connector to the running stack (stopped with it);
    yields each connector's callback port."""
    callback_ports = {p: add_psp(stack, p).callback_port for p in PROVIDERS}
    yield callback_ports


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).is_success
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_live_payment_completes_at_its_psp_with_a_signed_webhook(
    provider: str,
    psp_stack: dict[str, int],
    stack: Stack,
    merchant_factory,
    receiver: WebhookReceiver,
    db,
) -> None:
    journey = JOURNEYS[provider]

    async def connector_up() -> bool:
        if dead := [n for n in stack.dead_services() if provider in n]:
            raise AssertionError(f"{dead} exited; logs in {stack.log_dir}")
        return _healthy(psp_stack[provider])

    await wait_for(connector_up, timeout=60, what=f"the {provider} connector")
    merchant = merchant_factory(receiver.url, "live")
    body = {
        "reference": f"live-{uuid.uuid4()}",
        "amount": 3000,
        "currency": journey.currency,
        "country": journey.country,
        "mode": "direct",
        "operator": journey.operator,
        "customer": {"phone": journey.phone, "email": "awa@example.com"},
        "description": f"e2e {provider}",
    }
    response = await merchant.client.post("/collect/payments", json=body, headers=idempotency())
    assert response.status_code == 201, response.text
    payment = response.json()
    assert payment["environment"] == "live"

    async def completed() -> bool:
        got = await merchant.client.get(f"/collect/payments/{payment['id']}")
        return got.status_code == 200 and got.json()["status"] == "completed"

    await wait_for(completed, timeout=60, what=f"the {provider} payment to complete")
    provider_row = await db.fetchrow(
        "SELECT provider, status, psp_reference FROM connectors.provider_attempt"
        " WHERE payment_id = $1::uuid",
        payment["id"],
    )
    assert provider_row["provider"] == provider and provider_row["status"] == "completed"
    assert provider_row["psp_reference"]

    async def booked() -> list[object]:
        return await db.fetch(
            "SELECT e.id, sum(p.amount_minor) AS total FROM ledger.journal_entry e"
            " JOIN ledger.posting p ON p.entry_id = e.id WHERE e.payment_id = $1::uuid"
            " GROUP BY e.id",
            payment["id"],
        )

    entries = await wait_for(booked, timeout=30, what="the ledger entry of the live payment")
    assert len(entries) == 1 and entries[0]["total"] == 0
    # The stack runs with FLUXPAY_WEBHOOK_LIVE_GUARD=false (development) so a live event
    # may reach this http://127.0.0.1 receiver; deployments refuse it (SSRF guard).
    completed_event = await webhook(receiver, merchant, payment["id"], "collect.payment.completed")
    assert completed_event["environment"] == "live"
