"""Stripe simulator: Checkout Sessions, payment intents, refunds and signed events.

- form-encoded bodies with bracketed keys, `Authorization: Bearer <secret key>`;
- `Idempotency-Key`: a repeated key with the same parameters replays the first answer, with
  other parameters answers `400 idempotency_error` (as Stripe does);
- `POST /v1/checkout/sessions`, `GET /v1/checkout/sessions/{id}` (`expand[]` of
  `payment_intent`, `payment_intent.latest_charge.balance_transaction`),
  `POST /v1/checkout/sessions/{id}/expire`, `GET /v1/payment_intents/{id}`,
  `POST /v1/refunds`, `GET /v1/refunds/{id}`;
- a hosted page at the session `url` (`4242 4242 4242 4242` pays, `4000 0000 0000 9995`
  is declined) besides the simulated customers of `metadata[customer_phone]`;
- events POSTed to the webhook URL, signed `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256
  of "{t}.{body}">`.

Settings (env): `FLUXPAY_STRIPE_SECRET_KEY`, `FLUXPAY_STRIPE_WEBHOOK_SECRET`,
`PSP_SIM_STRIPE_WEBHOOK_URL`, `PSP_SIM_DELAY_SECONDS`, `PSP_SIM_SESSION_TTL_SECONDS`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from psp_simulators.common import (
    Customer,
    SimulatorCore,
    approves,
    customer_of,
    env_float,
    env_str,
)

ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx",
                "vnd", "vuv", "xaf", "xof", "xpf"}  # fmt: skip
DECLINE = {
    "type": "card_error",
    "code": "card_declined",
    "decline_code": "insufficient_funds",
    "message": "Your card has insufficient funds.",
}


@dataclass
class StripeConfig:
    secret_key: str = "dev-stripe-secret-key"
    webhook_secret: str = "dev-stripe-webhook-secret"
    webhook_url: str | None = "http://127.0.0.1:8104/callbacks/stripe"
    delay_seconds: float = 1.0
    session_ttl_seconds: float = 60.0

    @classmethod
    def from_env(cls) -> StripeConfig:
        return cls(
            secret_key=env_str("FLUXPAY_STRIPE_SECRET_KEY", cls.secret_key),
            webhook_secret=env_str("FLUXPAY_STRIPE_WEBHOOK_SECRET", cls.webhook_secret),
            webhook_url=env_str("PSP_SIM_STRIPE_WEBHOOK_URL", cls.webhook_url or ""),
            delay_seconds=env_float("PSP_SIM_DELAY_SECONDS", cls.delay_seconds),
            session_ttl_seconds=env_float("PSP_SIM_SESSION_TTL_SECONDS", cls.session_ttl_seconds),
        )


@dataclass
class StripeState:
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)


def parse_form(raw: bytes) -> dict[str, Any]:
    """`a[b][0][c]=1` -> `{"a": {"b": {"0": {"c": "1"}}}}` (lists stay index-keyed)."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(raw.decode(), keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if parts[-1].endswith("[]") or key.endswith("[]"):
            node.setdefault(parts[-1], []).append(value)
        else:
            node[parts[-1]] = value
    return root


def _error(
    status: int, message: str, kind: str = "invalid_request_error", **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, **extra}}, status)


def _id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


def create_app(config: StripeConfig | None = None) -> FastAPI:
    config = config or StripeConfig.from_env()
    core = SimulatorCore()
    state = StripeState()
    app = FastAPI(title="Stripe simulator")
    core.install(app)
    app.state.sim = state

    def unauthorized(request: Request) -> JSONResponse | None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given, f"Bearer {config.secret_key}"):
            return _error(401, "Invalid API Key provided.")
        return None

    async def emit(kind: str, obj: dict[str, Any]) -> None:
        event = {
            "id": _id("evt"),
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "type": kind,
            "livemode": False,
            "pending_webhooks": 1,
            "data": {"object": obj},
        }
        raw = orjson.dumps(event)
        timestamp = str(int(time.time()))
        signature = hmac.new(
            config.webhook_secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256
        ).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": f"t={timestamp},v1={signature}",
        }
        await core.callbacks.send(config.webhook_url, raw, headers)

    async def idempotent(request: Request, handler: Any) -> JSONResponse:
        """Run a creation once per Idempotency-Key; replay its answer afterwards."""
        raw = await request.body()
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if raw and content_type != "application/x-www-form-urlencoded":
            # Stripe's API takes form-encoded bodies only (a JSON body is not read).
            return _error(
                400,
                "Invalid request: bodies must be application/x-www-form-urlencoded.",
                "parameter_invalid",
            )
        key = request.headers.get("idempotency-key")
        fingerprint = hashlib.sha256(request.url.path.encode() + raw).hexdigest()
        if key and key in state.idempotency:
            seen, status, body = state.idempotency[key]
            if seen != fingerprint:
                return _error(
                    400,
                    "Keys for idempotent requests can only be used with the "
                    "same parameters they were first used with.",
                    "idempotency_error",
                )
            return JSONResponse(body, status, headers={"Idempotent-Replayed": "true"})
        status, body = await handler(parse_form(raw))
        if key and status < 500:
            state.idempotency[key] = (fingerprint, status, body)
        return JSONResponse(body, status)

    def pay(session: dict[str, Any], declined: bool) -> dict[str, Any]:
        intent = state.intents.get(session.get("payment_intent") or "") or _new_intent(session)
        state.intents[intent["id"]] = intent
        session["payment_intent"] = intent["id"]
        if declined:
            intent.update(status="requires_payment_method", last_payment_error=DECLINE)
            return intent
        charge = _new_charge(intent)
        state.charges[charge["id"]] = charge
        intent.update(
            status="succeeded", latest_charge=charge["id"], amount_received=intent["amount"]
        )
        session.update(status="complete", payment_status="paid")
        return intent

    async def customer_pays(session: dict[str, Any], declined: bool, notify: bool = True) -> None:
        if session["status"] != "open":
            return
        intent = pay(session, declined)
        if not notify:
            return
        if declined:
            await emit("payment_intent.payment_failed", dict(intent))
        else:
            await emit("payment_intent.succeeded", dict(intent))
            await emit("checkout.session.completed", dict(session))

    async def expire(session: dict[str, Any]) -> bool:
        if session["status"] != "open":
            return False
        session["status"] = "expired"
        await emit("checkout.session.expired", dict(session))
        return True

    async def create_session(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        items = params.get("line_items") or {}
        item = items.get("0") if isinstance(items, dict) else None
        price = (item or {}).get("price_data") or {}
        if params.get("mode") != "payment" or not price.get("unit_amount"):
            return 400, {"error": {"type": "invalid_request_error", "message": "Invalid session."}}
        if not params.get("success_url"):
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "message": "Missing required param: success_url.",
                }
            }
        now = int(time.time())
        expires_at = int(params.get("expires_at") or now + 86400)
        if not now + 1800 <= expires_at <= now + 86400:
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "param": "expires_at",
                    "message": "expires_at must be 30 minutes to 24 hours away.",
                }
            }
        session_id = _id("cs")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "payment_intent": None,
            "amount_total": int(price["unit_amount"]) * int((item or {}).get("quantity", 1)),
            "currency": str(price.get("currency", "usd")).lower(),
            "client_reference_id": params.get("client_reference_id"),
            "customer_email": params.get("customer_email"),
            "metadata": params.get("metadata") or {},
            "payment_intent_data": params.get("payment_intent_data") or {},
            "success_url": params["success_url"],
            "cancel_url": params.get("cancel_url"),
            "created": now,
            "expires_at": expires_at,
            "url": f"{app.state.public_url}/c/pay/{session_id}",
        }
        state.sessions[session_id] = session
        customer = customer_of(session["metadata"].get("customer_phone"))
        if customer is not Customer.SILENT:
            core.later(
                config.delay_seconds,
                lambda: customer_pays(
                    session,
                    declined=not approves(customer),
                    notify=customer is not Customer.APPROVES_WITHOUT_CALLBACK,
                ),
            )
        core.later(config.session_ttl_seconds, lambda: expire(session))
        return 200, _public(session)

    @app.middleware("http")
    async def remember_base_url(request: Request, call_next: Any) -> Any:
        app.state.public_url = str(request.base_url).rstrip("/")
        return await call_next(request)

    @app.post("/v1/checkout/sessions")
    async def post_session(request: Request) -> JSONResponse:
        if (refusal := unauthorized(request)) is not None:
            return refusal
        return await idempotent(request, create_session)

    @app.get("/v1/checkout/sessions/{session_id}")
    async def get_session(session_id: str, request: Request) -> JSONResponse:
        if (refusal := unauthorized(request)) is not None:
            return refusal
        session = state.sessions.get(session_id)
        if session is None:
            return _error(404, f"No such checkout.session: '{session_id}'", code="resource_missing")
        expand = request.query_params.getlist("expand[]")
        return JSONResponse(_expanded(state, _public(session), expand))

    @app.post("/v1/checkout/sessions/{session_id}/expire")
    async def expire_session(session_id: str, request: Request) -> JSONResponse:
        if (refusal := unauthorized(request)) is not None:
            return refusal
        session = state.sessions.get(session_id)
        if session is None:
            return _error(404, f"No such checkout.session: '{session_id}'", code="resource_missing")
        if not await expire(session):
            return _error(400, "Only Checkout Sessions with a status of open can be expired.")
        return JSONResponse(_public(session))

    @app.get("/v1/payment_intents/{intent_id}")
    async def get_intent(intent_id: str, request: Request) -> JSONResponse:
        if (refusal := unauthorized(request)) is not None:
            return refusal
        intent = state.intents.get(intent_id)
        if intent is None:
            return _error(404, f"No such payment_intent: '{intent_id}'", code="resource_missing")
        return JSONResponse(intent)

    async def create_refund(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        intent = state.intents.get(str(params.get("payment_intent")))
        if intent is None or intent["status"] != "succeeded":
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "code": "charge_not_refundable",
                    "message": "This PaymentIntent has no successful charge.",
                }
            }
        charge = state.charges[intent["latest_charge"]]
        amount = int(params.get("amount") or charge["amount"] - charge["amount_refunded"])
        if amount <= 0 or amount > charge["amount"] - charge["amount_refunded"]:
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "code": "amount_too_large",
                    "message": "Refund amount exceeds the refundable amount.",
                }
            }
        refund = {
            "id": _id("re"),
            "object": "refund",
            "amount": amount,
            "currency": charge["currency"],
            "charge": charge["id"],
            "payment_intent": intent["id"],
            "metadata": params.get("metadata") or {},
            "reason": params.get("reason"),
            "status": "pending",
            "failure_reason": None,
            "created": int(time.time()),
        }
        state.refunds[refund["id"]] = refund
        core.later(config.delay_seconds, lambda: settle_refund(refund, charge))
        return 200, refund

    async def settle_refund(refund: dict[str, Any], charge: dict[str, Any]) -> None:
        session = next(
            (
                s
                for s in state.sessions.values()
                if s.get("payment_intent") == refund["payment_intent"]
            ),
            {},
        )
        if (
            customer_of((session.get("metadata") or {}).get("customer_phone"))
            is Customer.REFUND_FAILS
        ):
            refund.update(status="failed", failure_reason="declined")
            await emit("refund.failed", dict(refund))
            return
        refund["status"] = "succeeded"
        charge["amount_refunded"] += refund["amount"]
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        charge["refunds"]["data"].insert(0, dict(refund))
        await emit("charge.refunded", dict(charge))

    @app.post("/v1/refunds")
    async def post_refund(request: Request) -> JSONResponse:
        if (refusal := unauthorized(request)) is not None:
            return refusal
        return await idempotent(request, create_refund)

    @app.get("/v1/refunds/{refund_id}")
    async def get_refund(refund_id: str, request: Request) -> JSONResponse:
        if (refusal := unauthorized(request)) is not None:
            return refusal
        refund = state.refunds.get(refund_id)
        if refund is None:
            return _error(404, f"No such refund: '{refund_id}'", code="resource_missing")
        return JSONResponse(refund)

    @app.get("/c/pay/{session_id}", response_class=HTMLResponse)
    async def checkout_page(session_id: str) -> HTMLResponse:
        session = state.sessions.get(session_id)
        if session is None:
            return HTMLResponse("<h1>Unknown checkout session</h1>", 404)
        return HTMLResponse(_page(session))

    @app.post("/c/pay/{session_id}", response_class=HTMLResponse)
    async def checkout_submit(session_id: str, request: Request) -> HTMLResponse:
        card = str(parse_form(await request.body()).get("card", ""))
        session = state.sessions.get(session_id)
        if session is None or session["status"] != "open":
            return HTMLResponse("<h1>This checkout is closed</h1>", 400)
        await customer_pays(session, declined=re.sub(r"\D", "", card) != "4242424242424242")
        return HTMLResponse(_page(session))

    return app


def _new_intent(session: dict[str, Any]) -> dict[str, Any]:
    metadata = (session.get("payment_intent_data") or {}).get("metadata") or session["metadata"]
    return {
        "id": _id("pi"),
        "object": "payment_intent",
        "amount": session["amount_total"],
        "amount_received": 0,
        "currency": session["currency"],
        "status": "requires_payment_method",
        "metadata": metadata,
        "latest_charge": None,
        "last_payment_error": None,
        "created": int(time.time()),
    }


def _new_charge(intent: dict[str, Any]) -> dict[str, Any]:
    amount, currency = intent["amount"], intent["currency"]
    fee = (amount * 29 + 500) // 1000 + (0 if currency in ZERO_DECIMAL else 30)
    return {
        "id": _id("ch"),
        "object": "charge",
        "amount": amount,
        "amount_refunded": 0,
        "currency": currency,
        "paid": True,
        "refunded": False,
        "payment_intent": intent["id"],
        "metadata": intent["metadata"],
        "balance_transaction": {
            "id": _id("txn"),
            "object": "balance_transaction",
            "amount": amount,
            "fee": fee,
            "net": amount - fee,
            "currency": currency,
        },
        "refunds": {"object": "list", "data": []},
    }


def _public(session: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in session.items() if k != "payment_intent_data"}


def _expanded(state: StripeState, session: dict[str, Any], expand: list[str]) -> dict[str, Any]:
    intent = state.intents.get(session.get("payment_intent") or "")
    if intent is None or not any(e.startswith("payment_intent") for e in expand):
        return session
    intent = dict(intent)
    if "payment_intent.latest_charge.balance_transaction" in expand or (
        "payment_intent.latest_charge" in expand
    ):
        charge = state.charges.get(intent.get("latest_charge") or "")
        intent["latest_charge"] = dict(charge) if charge else None
    return {**session, "payment_intent": intent}


def _page(session: dict[str, Any]) -> str:
    amount = session["amount_total"]
    shown = amount if session["currency"] in ZERO_DECIMAL else amount / 100
    if session["status"] != "open":
        state = "Paid" if session["payment_status"] == "paid" else session["status"].title()
        return f"<h1>{state}</h1><p><a href='{session['success_url']}'>Back to the shop</a></p>"
    return (
        f"<h1>Pay {shown} {session['currency'].upper()}</h1>"
        "<form method='post'><input name='card' value='4242 4242 4242 4242'>"
        "<button type='submit'>Pay</button></form>"
    )
