"""Novasend payin simulator (seed 002; docs.novasend.app).

- `POST /v1/payin/sessions` (HTTP Basic `api_key:api_client`, `X-Idempotency-Key`
  required: a repeated key answers the first session, never a second one);
- `GET /v1/payin/{reference}` by the reference Novasend generated (`tr_…`, seed 002: "généré
  lors du POST"), never the merchant's: the session, with `transaction` once the customer
  acted (`transaction.status` is the final truth); a lost answer is recovered by repeating
  the POST with the same `X-Idempotency-Key`;
- JSON bodies only; `amount` a positive integer, `msisdn` E.164, `country` ISO alpha-2,
  `customerName` text;
- `POST /v1/payout`, `GET /v1/payout/{reference}` (refunds are payouts);
- webhooks to the configured URL, the transaction object signed
  `X-Signature-Value: hex HMAC-SHA256(body, webhook secret)`.

Settings (env): `FLUXPAY_NOVASEND_API_KEY`, `FLUXPAY_NOVASEND_API_CLIENT`,
`FLUXPAY_NOVASEND_WEBHOOK_SECRET` (the connector's), `PSP_SIM_NOVASEND_WEBHOOK_URL`,
`PSP_SIM_DELAY_SECONDS` (customer), `PSP_SIM_SESSION_TTL_SECONDS` (confirmation timeout).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from psp_simulators.common import (
    Customer,
    SimulatorCore,
    approves,
    customer_of,
    env_float,
    env_str,
)

FEE_PERCENT = 2
REQUIRED = ("reference", "accountId", "amount", "msisdn", "customerName", "country")


@dataclass
class NovasendConfig:
    api_key: str = "dev-novasend-api-key"
    api_client: str = "dev-novasend-api-client"
    webhook_secret: str = "dev-novasend-webhook-secret"
    webhook_url: str | None = "http://127.0.0.1:8101/callbacks/novasend"
    delay_seconds: float = 1.0
    session_ttl_seconds: float = 60.0

    @classmethod
    def from_env(cls) -> NovasendConfig:
        return cls(
            api_key=env_str("FLUXPAY_NOVASEND_API_KEY", cls.api_key),
            api_client=env_str("FLUXPAY_NOVASEND_API_CLIENT", cls.api_client),
            webhook_secret=env_str("FLUXPAY_NOVASEND_WEBHOOK_SECRET", cls.webhook_secret),
            webhook_url=env_str("PSP_SIM_NOVASEND_WEBHOOK_URL", cls.webhook_url or ""),
            delay_seconds=env_float("PSP_SIM_DELAY_SECONDS", cls.delay_seconds),
            session_ttl_seconds=env_float("PSP_SIM_SESSION_TTL_SECONDS", cls.session_ttl_seconds),
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class NovasendState:
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)  # by Novasend reference
    by_merchant_reference: dict[str, str] = field(default_factory=dict)
    by_idempotency_key: dict[str, str] = field(default_factory=dict)
    payouts: dict[str, dict[str, Any]] = field(default_factory=dict)  # by merchant reference

    def find(self, reference: str) -> dict[str, Any] | None:
        return self.sessions.get(reference)


def create_app(config: NovasendConfig | None = None) -> FastAPI:
    config = config or NovasendConfig.from_env()
    core = SimulatorCore()
    state = NovasendState()
    app = FastAPI(title="Novasend simulator")
    core.install(app)
    app.state.sim = state

    def authorized(request: Request) -> bool:
        expected = base64.b64encode(f"{config.api_key}:{config.api_client}".encode()).decode()
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given, f"Basic {expected}")

    def error(status: int, message: str, code: str) -> JSONResponse:
        return JSONResponse({"statusCode": status, "message": message, "code": code}, status)

    async def notify(body: dict[str, Any]) -> None:
        raw = orjson.dumps(body)
        signature = hmac.new(config.webhook_secret.encode(), raw, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Signature-Value": signature}
        await core.callbacks.send(config.webhook_url, raw, headers)

    def webhook_body(session: dict[str, Any], status: str) -> dict[str, Any]:
        return {
            "id": session["reference"],
            "fees": session["fee"],
            "type": "payin",
            "amount": session["amount"],
            "status": status,
            "failure": session["failure"],
            "currency": session["currency"],
            "customer": {"name": session["customerName"], "phoneNumber": session["phoneNumber"]},
            "createdAt": session["createdAt"],
            "reference": session["customerReference"],
            "paymentUrl": session["paymentUrl"],
            "chargedAmount": session["chargedAmount"],
            "confirmationStatus": session["confirmationStatus"],
            "confirmationRequired": session["confirmationRequired"],
        }

    async def customer_acts(session: dict[str, Any]) -> None:
        customer = customer_of(session["phoneNumber"])
        if approves(customer):
            _settle(session, "completed", "accepted")
        else:
            session["failure"] = {
                "code": "INSUFFICIENT_FUNDS",
                "message": "The customer's balance is insufficient.",
            }
            _settle(session, "failed", "declined")
        if customer is not Customer.APPROVES_WITHOUT_CALLBACK:
            await notify(webhook_body(session, session["transaction"]["status"]))

    async def confirmation_expires(session: dict[str, Any]) -> None:
        if session["transaction"] is None:
            session["status"] = "expired"
            session["confirmationStatus"] = "expired"
            await notify(webhook_body(session, "expired"))

    @app.post("/v1/payin/sessions")
    async def create_session(request: Request) -> JSONResponse:
        if not authorized(request):
            return error(401, "Unauthorized", "UNAUTHORIZED")
        key = request.headers.get("x-idempotency-key")
        if not key:
            return error(400, "X-Idempotency-Key is required", "IDEMPOTENCY_KEY_REQUIRED")
        if key in state.by_idempotency_key:
            return JSONResponse(_public(state.sessions[state.by_idempotency_key[key]]), 201)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return error(415, "Content-Type must be application/json", "UNSUPPORTED_MEDIA_TYPE")
        body = await request.json()
        missing = [f for f in REQUIRED if not body.get(f)]
        if missing:
            return error(400, f"missing fields: {', '.join(missing)}", "VALIDATION_ERROR")
        if (
            isinstance(body["amount"], bool)
            or not isinstance(body["amount"], int)
            or body["amount"] <= 0
        ):
            return error(400, "amount must be a positive integer", "INVALID_AMOUNT")
        if not re.fullmatch(r"\+[1-9]\d{7,14}", str(body["msisdn"])):
            return error(400, "msisdn must be in E.164 format", "INVALID_MSISDN")
        if not re.fullmatch(r"[A-Z]{2}", str(body["country"])):
            return error(400, "country must be an ISO 3166 alpha-2 code", "VALIDATION_ERROR")
        if not all(isinstance(body[f], str) for f in ("reference", "accountId", "customerName")):
            return error(400, "reference, accountId and customerName are text", "VALIDATION_ERROR")
        if body["reference"] in state.by_merchant_reference:
            return error(409, "reference already used", "DUPLICATE_REFERENCE")
        session = _new_session(body, customer_of(body["msisdn"]))
        state.sessions[session["reference"]] = session
        state.by_merchant_reference[body["reference"]] = session["reference"]
        state.by_idempotency_key[key] = session["reference"]
        customer = customer_of(body["msisdn"])
        if customer is not Customer.SILENT:
            core.later(config.delay_seconds, lambda: customer_acts(session))
        core.later(config.session_ttl_seconds, lambda: confirmation_expires(session))
        return JSONResponse(_public(session), 201)

    @app.get("/v1/payin/{reference}")
    async def get_payin(reference: str, request: Request) -> JSONResponse:
        if not authorized(request):
            return error(401, "Unauthorized", "UNAUTHORIZED")
        session = state.find(reference)
        if session is None:
            return error(404, "Payin not found", "NOT_FOUND")
        return JSONResponse(_public(session))

    @app.post("/v1/payout")
    async def create_payout(request: Request) -> JSONResponse:
        if not authorized(request):
            return error(401, "Unauthorized", "UNAUTHORIZED")
        body = await request.json()
        if not request.headers.get("x-idempotency-key"):
            return error(400, "X-Idempotency-Key is required", "IDEMPOTENCY_KEY_REQUIRED")
        reference = str(body.get("reference") or "")
        if reference in state.payouts:
            return JSONResponse(state.payouts[reference], 201)
        payout = _new_payout(body)
        state.payouts[reference] = payout

        async def settle_payout() -> None:
            if customer_of(body.get("msisdn")) is Customer.REFUND_FAILS:
                payout["status"] = "failed"
                payout["failure"] = {"code": "PAYOUT_REJECTED", "message": "Payout rejected."}
            else:
                payout["status"] = "processed"
                payout["confirmationStatus"] = "accepted"
            raw_body = {**payout, "type": "payout"}
            await notify(raw_body)

        core.later(config.delay_seconds, settle_payout)
        return JSONResponse(payout, 201)

    @app.get("/v1/payout/{reference}")
    async def get_payout(reference: str, request: Request) -> JSONResponse:
        if not authorized(request):
            return error(401, "Unauthorized", "UNAUTHORIZED")
        payout = state.payouts.get(reference)
        if payout is None:
            return error(404, "Payout not found", "NOT_FOUND")
        return JSONResponse(payout)

    return app


def _new_session(body: dict[str, Any], customer: Customer) -> dict[str, Any]:
    amount = body["amount"]
    fee = (amount * FEE_PERCENT + 50) // 100
    by_link = customer is Customer.CONFIRMS_BY_LINK
    reference = "tr_" + secrets.token_hex(12)
    return {
        "type": "payin",
        "fee": fee,
        "reference": reference,
        "phoneNumber": body["msisdn"],
        "customerName": body["customerName"],
        "amount": amount,
        "chargedAmount": amount + fee,
        "status": "processing",
        "currency": "XOF",
        "customerReference": body["reference"],
        "confirmationRequired": by_link,
        "confirmationStatus": "none",
        "paymentUrl": f"https://link.novasend.app/link/{reference[3:11]}" if by_link else None,
        "createdAt": _now(),
        "transaction": None,
        "failure": None,
    }


def _settle(session: dict[str, Any], outcome: str, confirmation: str) -> None:
    session["status"] = "processed"
    session["confirmationStatus"] = confirmation
    session["transaction"] = {
        "reference": "tr_" + secrets.token_hex(8),
        "status": outcome,
        "customerName": session["customerName"],
        "processedAt": _now(),
        "phoneNumber": session["phoneNumber"],
        "amount": f"{session['amount']}.00",
        "fees": f"{session['fee']}.00",
        "chargedAmount": f"{session['chargedAmount']}.00",
        "currency": session["currency"],
    }


def _public(session: dict[str, Any]) -> dict[str, Any]:
    return dict(session)


def _new_payout(body: dict[str, Any]) -> dict[str, Any]:
    amount = int(body.get("amount") or 0)
    return {
        "id": "pr_" + secrets.token_hex(12),
        "type": "payout",
        "reference": body.get("reference"),
        "status": "processing",
        "confirmationRequired": False,
        "confirmationStatus": "none",
        "paymentUrl": None,
        "customer": {"name": body.get("customerName"), "phoneNumber": body.get("msisdn")},
        "isDirect": False,
        "payFee": False,
        "createdAt": _now(),
        "amount": amount,
        "fee": 0,
        "chargedAmount": amount,
        "currency": "XOF",
        "failure": None,
    }
