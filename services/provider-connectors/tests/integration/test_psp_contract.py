"""One contract suite every real-PSP connector passes, against its simulator over real HTTP.

Per PSP: success, refusal, customer timeout, 5xx then success, timeout then status lookup,
a callback that never comes (polling), duplicate callback, forged callback (401), refund.
The simulator runs in-process on a free port; the connector is wired as in production
(consumer, poller, outbox relay and its embedded callback server).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fluxpay_testing.infra import free_port, wait_for

from fluxpay_common.messages import CancelAtProvider, InitiatePayment, RefundAtProvider
from psp_simulators import irembopay, mtn_momo, novasend, stripe

SIM_DELAY = 0.3
SIM_TTL = 2.0


@dataclass
class Psp:
    """What the shared suite needs to know about one PSP."""

    name: str
    create_app: Callable[[str], Any]  # callback URL -> simulator app
    settings: Callable[[str, str], dict[str, Any]]  # simulator, callback URL -> settings
    phone: Callable[[str], str]  # last six digits -> a phone of the PSP's market
    country: str
    currency: str
    operator: str
    create_path: str  # where the payment is created (faults are injected there)
    created_for: Callable[[Any, InitiatePayment], int]  # PSP objects made for a payment
    idempotency_key: Callable[[dict[str, Any]], str | None]  # of a creation request seen
    forge: Callable[[dict[str, Any]], dict[str, Any]]  # a sent callback, made unverifiable
    resign: Callable[[dict[str, Any], str], dict[str, Any]]  # a sent callback, new body, signed
    reports_fees: bool = True
    signs_body: bool = True
    supports_refund: bool = True
    first_status: str = "processing"  # what the PSP's acceptance of a payment reads as
    # Notifications the PSP sends about one successful payment (Stripe: the intent's and the
    # Checkout Session's events, one after the other).
    success_notifications: int = 1


def _novasend_created(app: Any, cmd: InitiatePayment) -> int:
    sessions = app.state.sim.sessions.values()
    return sum(1 for s in sessions if s["customerReference"] == str(cmd.payment_id))


NOVASEND = Psp(
    name="novasend",
    create_app=lambda callback_url: novasend.create_app(
        novasend.NovasendConfig(
            webhook_url=callback_url, delay_seconds=SIM_DELAY, session_ttl_seconds=SIM_TTL
        )
    ),
    settings=lambda url, _: {"novasend_base_url": url, "novasend_poll_seconds": 0.3},
    phone=lambda suffix: f"+225070{suffix}",
    country="CI",
    currency="XOF",
    operator="orange",
    create_path="/v1/payin/sessions",
    created_for=_novasend_created,
    idempotency_key=lambda seen: seen["headers"].get("x-idempotency-key"),
    forge=lambda sent: _with_header(sent, "X-Signature-Value", "0" * 64),
    resign=lambda sent, body: {
        **_with_header(sent, "X-Signature-Value", _hmac("dev-novasend-webhook-secret", body)),
        "body": body,
    },
)


def _hmac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _irembopay_resigned(sent: dict[str, Any], body: str) -> dict[str, Any]:
    secret = "dev-irembopay-secret-key"
    if any(k.lower() == "irembopay-signature" for k in sent["headers"]):
        t = str(int(time.time() * 1000))
        value = f"t={t},s={_hmac(secret, t + '#' + body)}"
        return {**_with_header(sent, "irembopay-signature", value), "body": body}
    value = f"sha256={_hmac(secret, body)}"
    return {**_with_header(sent, "X-IremboPay-Signature", value), "body": body}


def _stripe_resigned(sent: dict[str, Any], body: str) -> dict[str, Any]:
    t = str(int(time.time()))
    value = f"t={t},v1={_hmac('dev-stripe-webhook-secret', t + '.' + body)}"
    return {**_with_header(sent, "Stripe-Signature", value), "body": body}


def _with_header(sent: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    headers = {k: v for k, v in sent["headers"].items() if k.lower() != name.lower()}
    return {**sent, "headers": {**headers, name: value}}


def _mtn_created(app: Any, cmd: InitiatePayment) -> int:
    made = app.state.sim.requests_to_pay.values()
    return sum(1 for r in made if r["externalId"] == str(cmd.payment_id))


MTN_MOMO = Psp(
    name="mtn_momo",
    create_app=lambda _: mtn_momo.create_app(
        mtn_momo.MtnMomoConfig(delay_seconds=SIM_DELAY, session_ttl_seconds=SIM_TTL)
    ),
    settings=lambda url, callback_url: {
        "mtn_momo_base_url": url,
        "mtn_momo_callback_url": callback_url,
        "mtn_momo_poll_seconds": 0.3,
    },
    phone=lambda suffix: f"+22997{suffix}",
    country="BJ",
    currency="XOF",
    operator="mtn",
    create_path="/collection/v1_0/requesttopay",
    created_for=_mtn_created,
    idempotency_key=lambda seen: seen["headers"].get("x-reference-id"),
    forge=lambda sent: {
        **sent,
        "url": re.sub(r"token=[0-9a-f]+", "token=" + "0" * 64, sent["url"]),
    },
    resign=lambda sent, body: {**sent, "body": body},  # the URL's token is the credential
    reports_fees=False,
    signs_body=False,  # MTN signs nothing: the URL carries our token, the body is re-checked
)


def _irembopay_created(app: Any, cmd: InitiatePayment) -> int:
    invoices = app.state.sim.invoices.values()
    return sum(1 for i in invoices if i["transactionId"] == str(cmd.payment_id))


def _irembopay_forged(sent: dict[str, Any]) -> dict[str, Any]:
    headers = {
        k: re.sub(r"(s=|sha256=)[0-9a-f]+", r"\g<1>" + "0" * 64, v)
        if "irembopay-signature" in k.lower()
        else v
        for k, v in sent["headers"].items()
    }
    return {**sent, "headers": headers}


IREMBOPAY = Psp(
    name="irembopay",
    create_app=lambda callback_url: irembopay.create_app(
        irembopay.IremboPayConfig(
            webhook_url=callback_url, delay_seconds=SIM_DELAY, session_ttl_seconds=SIM_TTL
        )
    ),
    settings=lambda url, _: {"irembopay_base_url": url, "irembopay_poll_seconds": 0.3},
    phone=lambda suffix: f"+250788{suffix}",
    country="RW",
    currency="RWF",
    operator="mtn",
    create_path="/payments/invoices",
    created_for=_irembopay_created,
    idempotency_key=lambda seen: json.loads(seen["body"]).get("transactionId"),
    forge=_irembopay_forged,
    resign=_irembopay_resigned,
    reports_fees=False,
    supports_refund=False,  # IremboPay has no refund API: refunds fail clearly
)


def _stripe_created(app: Any, cmd: InitiatePayment) -> int:
    sessions = app.state.sim.sessions.values()
    return sum(1 for s in sessions if s["client_reference_id"] == str(cmd.payment_id))


STRIPE = Psp(
    name="stripe",
    create_app=lambda callback_url: stripe.create_app(
        stripe.StripeConfig(
            webhook_url=callback_url, delay_seconds=SIM_DELAY, session_ttl_seconds=SIM_TTL
        )
    ),
    settings=lambda url, _: {"stripe_base_url": url, "stripe_poll_seconds": 0.3},
    phone=lambda suffix: f"+22997{suffix}",  # drives the simulated card holder
    country="BJ",
    currency="EUR",
    operator="card",
    create_path="/v1/checkout/sessions",
    created_for=_stripe_created,
    idempotency_key=lambda seen: seen["headers"].get("idempotency-key"),
    forge=lambda sent: {
        **sent,
        "headers": {
            k: re.sub(r"v1=[0-9a-f]+", "v1=" + "0" * 64, v) for k, v in sent["headers"].items()
        },
    },
    resign=_stripe_resigned,
    first_status="awaiting_payment",  # hosted Checkout: the customer pays on Stripe's page
    success_notifications=2,
)

PSPS = {"novasend": NOVASEND, "mtn_momo": MTN_MOMO, "irembopay": IREMBOPAY, "stripe": STRIPE}


@dataclass
class Rig:
    psp: Psp
    sim_url: str
    sim_app: Any
    callback_url: str

    def command(self, suffix: str, **changes: Any) -> InitiatePayment:
        phone = self.psp.phone(suffix)
        fields: dict[str, Any] = {
            "correlation_id": f"corr-{uuid.uuid4().hex[:8]}",
            "payment_id": uuid.uuid4(),
            "merchant_id": uuid.uuid4(),
            "environment": "live",
            "provider": self.psp.name,
            "reference": f"order-{uuid.uuid4()}",
            "amount": 5000,
            "currency": self.psp.currency,
            "country": self.psp.country,
            "operator": self.psp.operator,
            "phone": phone,
            "customer": {"phone": phone, "name": "Kofi Mensah", "email": "kofi@example.com"},
            "description": "contract test",
        }
        return InitiatePayment(**{**fields, **changes})

    async def fault(self, **spec: Any) -> None:
        async with httpx.AsyncClient(base_url=self.sim_url) as client:
            response = await client.post("/_sim/faults", json=spec)
            response.raise_for_status()

    async def callbacks(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.sim_url) as client:
            return list((await client.get("/_sim/callbacks")).json())

    async def creation_requests(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.sim_url) as client:
            params = {"path": self.psp.create_path, "method": "POST"}
            return list((await client.get("/_sim/requests", params=params)).json())

    async def creation_requests_for(self, cmd: InitiatePayment) -> list[dict[str, Any]]:
        marks = (str(cmd.payment_id), cmd.reference)
        return [
            r
            for r in await self.creation_requests()
            if any(m in r["body"] or m in str(r["headers"]) for m in marks)
        ]

    async def replay(self, sent: Mapping[str, Any], body: str | None = None) -> httpx.Response:
        """Send a callback the PSP sent (to the URL it used) once more."""
        async with httpx.AsyncClient() as client:
            return await client.post(
                sent["url"], content=body or sent["body"], headers=dict(sent["headers"])
            )


@pytest.fixture(scope="module", params=sorted(PSPS))
async def rig(request, worker_factory, http_server) -> AsyncIterator[Rig]:  # type: ignore[no-untyped-def]
    psp = PSPS[request.param]
    sim_port, callback_port = free_port(), free_port()
    callback_url = f"http://127.0.0.1:{callback_port}/callbacks/{psp.name}"
    sim_app = psp.create_app(callback_url)
    sim = await http_server(sim_app, sim_port)
    sim_url = f"http://127.0.0.1:{sim_port}"
    worker = await worker_factory(
        provider=psp.name,
        connector_http_port=callback_port,
        connector_poll_lease_seconds=1.5,
        psp_timeout_seconds=0.5,
        psp_retry_attempts=2,
        psp_retry_backoff_seconds=0.05,
        **psp.settings(sim_url, callback_url),
    )
    yield Rig(psp, sim_url, sim_app, callback_url)
    await worker.stop()
    await sim.stop()


def _callbacks_about(sent: list[dict[str, Any]], cmd: InitiatePayment) -> list[dict[str, Any]]:
    return [c for c in sent if str(cmd.payment_id) in c["body"] or cmd.reference in c["body"]]


async def test_customer_approval_completes_with_fees(rig: Rig, publish_command, provider_updates):
    cmd = rig.command("000001")
    await publish_command(cmd)
    completed = await provider_updates.wait_status(cmd.payment_id, "completed")
    assert provider_updates.statuses(cmd.payment_id) == [rig.psp.first_status, "completed"]
    assert completed.psp_reference
    if rig.psp.reports_fees:
        assert completed.fee_minor is not None and completed.fee_minor > 0
        assert completed.charged_amount_minor is not None
    assert rig.psp.created_for(rig.sim_app, cmd) == 1


async def test_customer_refusal_fails_with_the_psp_reason(
    rig: Rig, publish_command, provider_updates
):
    cmd = rig.command("000002")
    await publish_command(cmd)
    failed = await provider_updates.wait_status(cmd.payment_id, "failed")
    assert failed.failure_code and failed.failure_code != "customer_timeout"
    assert failed.failure_message
    assert "completed" not in provider_updates.statuses(cmd.payment_id)


async def test_silent_customer_times_out_at_the_psp(rig: Rig, publish_command, provider_updates):
    cmd = rig.command("000003")
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, rig.psp.first_status)
    failed = await provider_updates.wait_status(cmd.payment_id, "failed", timeout=SIM_TTL + 10)
    assert failed.failure_code == "customer_timeout"


async def test_outcome_without_callback_is_found_by_polling(
    rig: Rig, publish_command, provider_updates
):
    cmd = rig.command("000004")
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "completed")
    assert _callbacks_about(await rig.callbacks(), cmd) == []


async def test_psp_5xx_is_retried_and_never_fails_the_payment(
    rig: Rig, publish_command, provider_updates
):
    await rig.fault(method="POST", path=rig.psp.create_path, kind="error", status=503, count=1)
    cmd = rig.command("000001")
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "completed")
    assert "failed" not in provider_updates.statuses(cmd.payment_id)
    assert rig.psp.created_for(rig.sim_app, cmd) == 1
    assert len(await rig.creation_requests_for(cmd)) == 2  # the 503, then the retry


async def test_timeout_after_sending_is_resolved_by_status_lookup_not_a_second_charge(
    rig: Rig, publish_command, provider_updates, connectors_db
):
    # Every try of the creation reaches the PSP, which acts, but answers too late; no
    # callback comes either, so only asking the PSP for the status can settle it.
    await rig.fault(
        method="POST", path=rig.psp.create_path, kind="slow", delay_seconds=1.0, count=2
    )
    cmd = rig.command("000004")
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "completed", timeout=20)
    assert "failed" not in provider_updates.statuses(cmd.payment_id)
    assert rig.psp.created_for(rig.sim_app, cmd) == 1
    tries = await rig.creation_requests_for(cmd)
    assert len(tries) >= 2
    keys = {rig.psp.idempotency_key(r) for r in tries}
    assert len(keys) == 1 and None not in keys  # every try carried the one persisted key


async def test_duplicate_callback_has_no_second_effect(
    rig: Rig, publish_command, provider_updates, outbox_keys
):
    cmd = rig.command("000001")
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "completed")

    async def delivered() -> list[dict[str, Any]]:
        return [c for c in _callbacks_about(await rig.callbacks(), cmd) if c["status"] == 200]

    first = (await wait_for(delivered, what="the PSP callback"))[0]
    before = await outbox_keys(cmd.payment_id)
    again = await rig.replay(first)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert await outbox_keys(cmd.payment_id) == before


async def test_forged_callback_is_refused_with_401(
    rig: Rig, publish_command, provider_updates, outbox_keys
):
    cmd = rig.command("000001")
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "completed")
    first = (await wait_for(lambda: _async(_callbacks_about, rig, cmd), what="a callback"))[0]
    before = await outbox_keys(cmd.payment_id)
    forged = await rig.replay(rig.psp.forge(first))
    assert forged.status_code == 401
    if rig.psp.signs_body:
        tampered = await rig.replay(first, body=first["body"].replace("5000", "5"))
        assert tampered.status_code == 401
    assert await outbox_keys(cmd.payment_id) == before


async def _async(select, rig: Rig, cmd: InitiatePayment):  # type: ignore[no-untyped-def]
    return select(await rig.callbacks(), cmd)


async def test_refund_completes_at_the_psp(rig: Rig, publish_command, provider_updates):
    cmd = rig.command("000001")
    await publish_command(cmd)
    done = await provider_updates.wait_status(cmd.payment_id, "completed")
    # The orchestrator derives a refund's id from the merchant's Idempotency-Key (a UUID v5),
    # whatever a PSP requires of its own ids (MTN: a UUID v4 `X-Reference-Id`).
    refund_id = uuid.uuid5(cmd.payment_id, "refund:key-1")
    await publish_command(
        RefundAtProvider(
            correlation_id=cmd.correlation_id,
            payment_id=cmd.payment_id,
            merchant_id=cmd.merchant_id,
            environment=cmd.environment,
            provider=cmd.provider,
            refund_id=refund_id,
            amount=2000,
            currency=cmd.currency,
            psp_reference=done.psp_reference,
            phone=cmd.phone,
        )
    )

    async def settled():  # type: ignore[no-untyped-def]
        return provider_updates.refunds(cmd.payment_id)

    [refund] = await wait_for(settled, what="the refund update")
    assert refund.refund_id == refund_id
    if rig.psp.supports_refund:
        assert refund.status == "completed"
    else:
        assert refund.status == "failed" and refund.failure_code == "refund_not_supported"


async def test_refund_refused_by_the_psp_fails_clearly(rig: Rig, publish_command, provider_updates):
    cmd = rig.command("000005")
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "completed")
    await publish_command(
        RefundAtProvider(
            correlation_id=cmd.correlation_id,
            payment_id=cmd.payment_id,
            merchant_id=cmd.merchant_id,
            environment=cmd.environment,
            provider=cmd.provider,
            refund_id=uuid.uuid4(),
            amount=5000,
            currency=cmd.currency,
        )
    )

    async def settled():  # type: ignore[no-untyped-def]
        return provider_updates.refunds(cmd.payment_id)

    [refund] = await wait_for(settled, what="the refund update")
    assert refund.status == "failed" and refund.failure_code


async def test_cancel_while_the_psp_never_got_the_payment_never_starts_it_later(
    rig: Rig, publish_command, provider_updates, connectors_db
):
    # Every try of the creation meets an outage: the PSP never saw the payment.
    await rig.fault(method="POST", path=rig.psp.create_path, kind="error", status=503, count=2)
    cmd = rig.command("000001")
    await publish_command(cmd)

    async def gave_up() -> bool:
        return len(await rig.creation_requests_for(cmd)) == 2

    await wait_for(gave_up, what="both creation tries to fail")
    await publish_command(
        CancelAtProvider(
            correlation_id=cmd.correlation_id,
            payment_id=cmd.payment_id,
            merchant_id=cmd.merchant_id,
            environment=cmd.environment,
            provider=cmd.provider,
        )
    )
    cancelled = await provider_updates.wait_status(cmd.payment_id, "cancelled", timeout=20)
    assert cancelled.failure_code == "not_initiated"
    assert rig.psp.created_for(rig.sim_app, cmd) == 0
    assert len(await rig.creation_requests_for(cmd)) == 2  # never sent again after the cancel


def _poisoned(body: str, poison: Callable[[str], Any]) -> str:
    """The notification with every text value replaced by `poison(value)`."""

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return poison(value)
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return json.dumps(walk(json.loads(body or "{}")))


@pytest.mark.parametrize(
    "poison",
    [lambda text: text + "\u0000", lambda text: {"text": text}],
    ids=["nul_in_ids", "object_for_string"],
)
async def test_signed_malformed_callback_answers_400_with_no_effect(
    rig: Rig, publish_command, provider_updates, outbox_keys, connectors_db, poison
):
    cmd = rig.command("000001")
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "completed")

    async def every_notification_answered() -> list[dict[str, Any]] | None:
        # Sent callbacks are recorded once the connector answered: none is in flight after.
        sent = await _async(_callbacks_about, rig, cmd)
        return sent if len(sent) >= rig.psp.success_notifications else None

    sent = (await wait_for(every_notification_answered, what="the PSP's notifications"))[0]
    before = await outbox_keys(cmd.payment_id)
    seen = "SELECT count(*) FROM provider_events WHERE provider = $1 AND payment_id = $2"
    events_before = await connectors_db.fetchval(seen, rig.psp.name, cmd.payment_id)
    bad = rig.psp.resign(sent, _poisoned(sent["body"], poison))
    answer = await rig.replay(bad, body=bad["body"])
    assert answer.status_code == 400
    assert answer.json()["error"] == "malformed_callback"
    assert await outbox_keys(cmd.payment_id) == before
    assert await connectors_db.fetchval(seen, rig.psp.name, cmd.payment_id) == events_before


async def _irembopay_notify(rig: Rig, cmd: InitiatePayment, status: str) -> httpx.Response:
    """IremboPay's own notification form (`data` is the invoice) for the payment's invoice."""
    number = rig.sim_app.state.sim.by_transaction_id[str(cmd.payment_id)]
    invoice = {**rig.sim_app.state.sim.invoices[number], "paymentStatus": status}
    body = json.dumps({"success": True, "message": "Payment notification", "data": invoice})
    sent = _irembopay_resigned(
        {"url": rig.callback_url, "headers": {"irembopay-signature": ""}}, body
    )
    return await rig.replay(sent, body=body)


async def test_irembopay_refusal_notified_in_any_named_status_fails_the_payment(
    rig: Rig, publish_command, provider_updates, connectors_db
):
    if rig.psp.name != "irembopay":
        pytest.skip("IremboPay's status vocabulary")
    cmd = rig.command("000001", operator="bk")  # pays by link: the customer never acts here
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "awaiting_payment")
    unknown = await _irembopay_notify(rig, cmd, "ON_HOLD")
    assert unknown.status_code == 200 and unknown.json()["status"] == "ignored"
    seen = "SELECT count(*) FROM provider_events WHERE payment_id = $1"
    assert await connectors_db.fetchval(seen, cmd.payment_id) == 0  # no news: not seen
    refused = await _irembopay_notify(rig, cmd, "CANCELLED")
    assert refused.status_code == 200 and refused.json()["status"] == "applied"
    cancelled = await provider_updates.wait_status(cmd.payment_id, "cancelled")
    assert cancelled.failure_code == "cancelled"


async def test_stripe_merchant_cancel_is_recorded_as_cancelled_not_as_a_timeout(
    rig: Rig, publish_command, provider_updates, connectors_db
):
    if rig.psp.name != "stripe":
        pytest.skip("Stripe ends a cancelled Checkout Session by expiring it")
    cmd = rig.command("000003")  # the card holder never pays
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "awaiting_payment")
    await publish_command(
        CancelAtProvider(
            correlation_id=cmd.correlation_id,
            payment_id=cmd.payment_id,
            merchant_id=cmd.merchant_id,
            environment=cmd.environment,
            provider=cmd.provider,
        )
    )
    cancelled = await provider_updates.wait_status(cmd.payment_id, "cancelled")
    assert cancelled.failure_code == "cancelled"
    assert "failed" not in provider_updates.statuses(cmd.payment_id)
    row = await connectors_db.fetchrow(
        "SELECT status, data->>'failure_code' AS code FROM provider_attempt WHERE payment_id = $1",
        cmd.payment_id,
    )
    assert (row["status"], row["code"]) == ("cancelled", "cancelled")


async def test_stripe_sends_the_card_holder_back_to_the_payments_own_page(
    rig: Rig, publish_command, provider_updates
):
    if rig.psp.name != "stripe":
        pytest.skip("Stripe Checkout's return URLs")
    cmd = rig.command("000001")
    await publish_command(cmd)
    await provider_updates.wait_status(cmd.payment_id, "completed")
    [created] = await rig.creation_requests_for(cmd)
    form = dict(httpx.QueryParams(created["body"]))
    assert form["success_url"].startswith(f"http://127.0.0.1:8000/checkout/{cmd.payment_id}")
    assert form["cancel_url"].startswith(f"http://127.0.0.1:8000/checkout/{cmd.payment_id}")
