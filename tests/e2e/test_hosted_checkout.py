"""The hosted checkout page driven by a real headless Chromium (Debian's), as a customer."""

from __future__ import annotations

import shutil

import pytest
from fluxpay_testing.infra import wait_for

from tests.e2e.conftest import Merchant, idempotency
from tests.e2e.test_collect_api import reach, webhook
from tests.support.receiver import WebhookReceiver
from tests.support.stack import ROOT, Stack

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def _hosted(merchant: Merchant, reference: str) -> dict[str, object]:
    response = await merchant.client.post(
        "/collect/payments",
        json={
            "reference": reference,
            "amount": 5000,
            "currency": "XOF",
            "country": "BJ",
            "mode": "hosted",
            "description": "Panier #77",
        },
        headers=idempotency(),
    )
    assert response.status_code == 201, response.text
    payment = dict(response.json())
    assert payment["status"] == "awaiting_payment"
    assert payment["next_action"]["type"] == "redirect_to_checkout"
    assert payment["checkout_url"] == payment["next_action"]["checkout_url"]
    return payment


async def test_customer_pays_on_the_hosted_page(
    stack: Stack, merchant_factory, receiver: WebhookReceiver
) -> None:
    assert CHROMIUM, "Debian's chromium is needed: apt-get install chromium (make install does)"
    from playwright.async_api import async_playwright

    merchant = merchant_factory(receiver.url)
    payment = await _hosted(merchant, "hosted-ok")
    shots = ROOT / "artifacts" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        await page.goto(str(payment["checkout_url"]))
        await page.get_by_text("5 000 FCFA").wait_for()
        # Whom the customer pays, before they type a number.
        await page.get_by_text("E2E shop").wait_for()
        await page.screenshot(path=str(shots / "checkout-choose.png"), full_page=True)
        await page.get_by_label("MTN", exact=False).first.check()
        await page.get_by_label("Numéro de téléphone").fill("+229 97 00 00 01")
        await page.get_by_role("button", name="Payer").click()
        await page.locator("body[data-status=completed]").wait_for(timeout=30_000)
        assert await page.get_by_text("Paiement réussi").is_visible()
        await page.screenshot(path=str(shots / "checkout-completed.png"), full_page=True)
        await browser.close()
    paid = await reach(merchant, payment["id"], "completed")
    assert paid["operator"] == "mtn" and paid["mode"] == "hosted"
    await webhook(receiver, merchant, payment["id"], "collect.payment.completed")


async def test_hosted_page_refuses_a_wrong_number_and_asks_coris_for_otp(
    stack: Stack, merchant_factory, receiver: WebhookReceiver
) -> None:
    import httpx

    merchant = merchant_factory(receiver.url)
    payment = await _hosted(merchant, "hosted-otp")
    base = str(payment["checkout_url"])
    async with httpx.AsyncClient() as customer:
        page = await customer.get(base)
        assert page.status_code == 200 and "Choisissez" in page.text
        wrong = await customer.post(f"{base}/select", json={"operator": "mtn", "phone": "+2296"})
        assert wrong.status_code == 400
        assert wrong.json()["error"]["code"] == "phone_invalid"
        chosen = await customer.post(
            f"{base}/select", json={"operator": "coris", "phone": "+22997000001"}
        )
        assert chosen.status_code == 200, chosen.text
        assert chosen.json()["status"] == "awaiting_otp"
        confirmed = await customer.post(f"{base}/otp", json={"otp": "123456"})
        assert confirmed.status_code == 200, confirmed.text

        async def completed() -> bool:
            state = await customer.get(f"{base}/state")
            return bool(state.json()["status"] == "completed")

        await wait_for(completed, timeout=30, what="the hosted OTP payment completed")
        missing = await customer.get(
            base.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
        )
        assert missing.status_code == 404


async def test_payer_opens_a_payment_link_and_pays_on_the_checkout_page(
    stack: Stack, merchant_factory, receiver: WebhookReceiver
) -> None:
    assert CHROMIUM, "Debian's chromium is needed: apt-get install chromium (make install does)"
    from playwright.async_api import async_playwright

    merchant = merchant_factory(receiver.url)
    created = await merchant.client.post(
        "/payment_links",
        json={"amount": 1500, "currency": "XOF", "country": "BJ", "description": "Adhésion"},
    )
    assert created.status_code == 201, created.text
    link = created.json()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 390, "height": 844})
        await page.goto(link["url"])
        await page.get_by_text("E2E shop").wait_for()
        await page.get_by_role("button", name="Payer").click()
        await page.get_by_text("1 500 FCFA").wait_for()
        await page.get_by_text("E2E shop").wait_for()
        await page.get_by_label("MTN", exact=False).first.check()
        await page.get_by_label("Numéro de téléphone").fill("+229 97 00 00 01")
        await page.get_by_role("button", name="Payer").click()
        await page.locator("body[data-status=completed]").wait_for(timeout=30_000)
        payment_id = page.url.rstrip("/").rsplit("/", 1)[-1]
        await browser.close()
    paid = await reach(merchant, payment_id, "completed")
    assert paid["metadata"]["payment_link_id"] == link["id"]
