"""IremboPay simulator (API v2, irembopay.gitbook.io; seed 001's notifications).

- every call needs `irembopay-secretKey` and `X-API-Version`; answers are
  `{"success", "message", "data", "errors"}`;
- `POST /payments/invoices` (`transactionId` unique: a repeat answers 409),
  `GET /payments/invoices/{invoiceNumber}` (`NEW` / `PAID`): by invoice number only, as
  IremboPay (its Node SDK: `getInvoice(880530633460)`); our `transactionId` is a 404;
- POST bodies must be `application/json`; `paymentItems[]` need `code`, `quantity` > 0 and
  a numeric `unitAmount` (RWF, whole units);
- `POST /payments/transactions/initiate` pushes to an MTN/Airtel `07…` number (RWF only),
  with IremboPay's error codes (`INVOICE_EXPIRED`, `INVOICE_ALREADY_PAID`,
  `BAD_PHONE_NUMBER`, `PAYMENT_PROVIDER_ERROR`, `BAD_DATA`, `INVOICE_NOT_FOUND`, ...);
- a payment is notified in IremboPay's form (`irembopay-signature: t=<ms>,s=<hex HMAC of
  "{t}#{body}">`); a refusal or a push timeout in the seed's form
  (`X-IremboPay-Signature: sha256=<hex HMAC of the body>`, `status` failed / timeout).

Settings (env): `FLUXPAY_IREMBOPAY_SECRET_KEY`, `PSP_SIM_IREMBOPAY_WEBHOOK_URL`,
`PSP_SIM_DELAY_SECONDS`, `PSP_SIM_SESSION_TTL_SECONDS` (push timeout).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
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

_MTN_PREFIXES = ("078", "079")
_AIRTEL_PREFIXES = ("072", "073")


@dataclass
class IremboPayConfig:
    secret_key: str = "dev-irembopay-secret-key"
    webhook_url: str | None = "http://127.0.0.1:8103/callbacks/irembopay"
    delay_seconds: float = 1.0
    session_ttl_seconds: float = 60.0

    @classmethod
    def from_env(cls) -> IremboPayConfig:
        return cls(
            secret_key=env_str("FLUXPAY_IREMBOPAY_SECRET_KEY", cls.secret_key),
            webhook_url=env_str("PSP_SIM_IREMBOPAY_WEBHOOK_URL", cls.webhook_url or ""),
            delay_seconds=env_float("PSP_SIM_DELAY_SECONDS", cls.delay_seconds),
            session_ttl_seconds=env_float("PSP_SIM_SESSION_TTL_SECONDS", cls.session_ttl_seconds),
        )


@dataclass
class IremboPayState:
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)  # by invoice number
    by_transaction_id: dict[str, str] = field(default_factory=dict)

    def find(self, invoice_number: str) -> dict[str, Any] | None:
        return self.invoices.get(invoice_number)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _answer(status: int, data: Any = None, message: str = "", code: str = "") -> JSONResponse:
    ok = status < 400
    body = {
        "success": ok,
        "message": message or ("OK" if ok else code),
        "data": data if ok else None,
        "errors": [] if ok else [{"code": code, "detail": message}],
    }
    return JSONResponse(body, status_code=status)


def create_app(config: IremboPayConfig | None = None) -> FastAPI:
    config = config or IremboPayConfig.from_env()
    core = SimulatorCore()
    state = IremboPayState()
    app = FastAPI(title="IremboPay simulator")
    core.install(app)
    app.state.sim = state

    def unauthorized(request: Request) -> JSONResponse | None:
        given = request.headers.get("irembopay-secretkey", "")
        if not hmac.compare_digest(given, config.secret_key):
            return _answer(401, message="Unauthorized request", code="UNAUTHORIZED")
        if request.headers.get("x-api-version") not in ("1", "2", "3"):
            return _answer(400, message="Unsupported X-API-Version", code="BAD_API_VERSION")
        if request.method == "POST" and not _is_json(request):
            return _answer(400, message="Content-Type must be application/json", code="BAD_REQUEST")
        return None

    async def notify_paid(invoice: dict[str, Any]) -> None:
        raw = orjson.dumps({"success": True, "message": "Payment notification", "data": invoice})
        timestamp = str(int(time.time() * 1000))
        signature = hmac.new(
            config.secret_key.encode(), timestamp.encode() + b"#" + raw, hashlib.sha256
        ).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "irembopay-signature": f"t={timestamp},s={signature}",
        }
        await core.callbacks.send(config.webhook_url, raw, headers)

    async def notify_seed_form(invoice: dict[str, Any], status: str, reason: str | None) -> None:
        raw = orjson.dumps(
            {
                "transaction_id": "IREMBO_TXN_" + secrets.token_hex(6).upper(),
                "reference": invoice["invoiceNumber"],
                "status": status,
                "amount": invoice["amount"],
                "currency": invoice["currency"],
                "payment_method": "mtn_momo",
                "phone_number": invoice.get("_phone"),
                "failure_reason": reason,
                "completed_at": None,
                "metadata": {"internal_reference": invoice["transactionId"]},
            }
        )
        signature = hmac.new(config.secret_key.encode(), raw, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-IremboPay-Signature": f"sha256={signature}",
        }
        await core.callbacks.send(config.webhook_url, raw, headers)

    @app.post("/payments/invoices")
    async def create_invoice(request: Request) -> JSONResponse:
        if (refusal := unauthorized(request)) is not None:
            return refusal
        body = await request.json()
        items = body.get("paymentItems") or []
        if not body.get("transactionId") or not body.get("paymentAccountIdentifier") or not items:
            return _answer(400, message="Missing required parameters", code="BAD_REQUEST")
        if not all(_valid_item(i) for i in items):
            return _answer(400, message="Invalid payment items", code="BAD_REQUEST")
        if (existing := state.by_transaction_id.get(body["transactionId"])) is not None:
            # The duplicate answer names the invoice already made for this transactionId
            # (the only way to find it again: lookups are by invoice number).
            answer = _answer(409, message="Duplicate transactionId", code="DUPLICATE_INVOICE")
            answer.body = orjson.dumps(
                {**orjson.loads(answer.body), "data": {"invoiceNumber": existing}}
            )
            answer.headers["content-length"] = str(len(answer.body))
            return answer
        number = str(880_000_000_000 + secrets.randbelow(10**11))
        invoice = {
            "invoiceNumber": number,
            "transactionId": body["transactionId"],
            "paymentAccountIdentifier": body["paymentAccountIdentifier"],
            "paymentItems": items,
            "paymentStatus": "NEW",
            "amount": sum(i.get("unitAmount", 0) * i.get("quantity", 1) for i in items),
            "currency": "RWF",
            "type": "SINGLE",
            "createdAt": _now(),
            "updatedAt": _now(),
            "expiryAt": body.get("expiryAt"),
            "customer": body.get("customer"),
            "description": body.get("description"),
            "language": body.get("language", "EN"),
            "paymentLinkUrl": f"https://checkout.sandbox.irembopay.com/{number}",
        }
        state.invoices[number] = invoice
        state.by_transaction_id[body["transactionId"]] = number
        return _answer(201, _public(invoice), "Invoice created successfully")

    @app.get("/payments/invoices/{reference}")
    async def get_invoice(reference: str, request: Request) -> JSONResponse:
        if (refusal := unauthorized(request)) is not None:
            return refusal
        invoice = state.find(reference)
        if invoice is None:
            return _answer(404, message="Invoice not found", code="INVOICE_NOT_FOUND")
        return _answer(200, _public(invoice))

    @app.post("/payments/transactions/initiate")
    async def initiate_push(request: Request) -> JSONResponse:
        if (refusal := unauthorized(request)) is not None:
            return refusal
        body = await request.json()
        problem = _push_problem(state, body)
        if problem is not None:
            return _answer(problem[0], message=problem[2], code=problem[1])
        invoice = state.invoices[body["invoiceNumber"]]
        invoice["_phone"] = body["accountIdentifier"]
        customer = customer_of(body["accountIdentifier"])

        async def customer_acts() -> None:
            if invoice["paymentStatus"] == "PAID":
                return
            if approves(customer):
                invoice.update(
                    paymentStatus="PAID",
                    paidAt=_now(),
                    updatedAt=_now(),
                    paymentReference="MP" + secrets.token_hex(5).upper(),
                    paymentMethod="MTN_MOMO"
                    if body["paymentProvider"] == "MTN"
                    else "AIRTEL_MONEY",
                )
                if customer is not Customer.APPROVES_WITHOUT_CALLBACK:
                    await notify_paid(_public(invoice))
            else:
                await notify_seed_form(invoice, "failed", "INSUFFICIENT_FUNDS")

        async def push_times_out() -> None:
            if invoice["paymentStatus"] == "NEW":
                await notify_seed_form(invoice, "timeout", None)

        if customer is Customer.SILENT:
            core.later(config.session_ttl_seconds, push_times_out)
        else:
            core.later(config.delay_seconds, customer_acts)
        data = {
            "accountIdentifier": body["accountIdentifier"],
            "paymentProvider": body["paymentProvider"],
            "invoiceNumber": body["invoiceNumber"],
            "amount": invoice["amount"],
            "referenceId": secrets.token_hex(8),
        }
        return _answer(201, data, "Push initiated")

    return app


def _push_problem(state: IremboPayState, body: dict[str, Any]) -> tuple[int, str, str] | None:
    number = body.get("invoiceNumber")
    phone = str(body.get("accountIdentifier") or "")
    provider = body.get("paymentProvider")
    if not number:
        return 400, "INVOICE_MISSING", "Invoice number is not provided"
    if not phone:
        return 400, "PHONE_NUMBER_MISSING", "No phone number provided"
    if provider not in ("MTN", "AIRTEL"):
        return 400, "BAD_PAYMENT_PROVIDER", "The value of the payment provider is not valid"
    invoice = state.invoices.get(number)
    if invoice is None:
        return 404, "INVOICE_NOT_FOUND", "The invoice provided does not exist"
    if invoice["paymentStatus"] == "PAID":
        return 400, "INVOICE_ALREADY_PAID", "The invoice is already paid"
    if invoice["currency"] != "RWF":
        return 400, "BAD_DATA", "Currency of the invoice is not RWF"
    expiry = invoice.get("expiryAt")
    if expiry and datetime.fromisoformat(expiry.replace("Z", "+00:00")) < datetime.now(UTC):
        return 400, "INVOICE_EXPIRED", "The invoice has expired"
    if not re.fullmatch(r"07\d{8}", phone):
        return 400, "BAD_PHONE_NUMBER", "The account identifier is not a valid Rwandan number"
    prefixes = _MTN_PREFIXES if provider == "MTN" else _AIRTEL_PREFIXES
    if not phone.startswith(prefixes):
        return 400, "PAYMENT_PROVIDER_ERROR", "Number and payment provider do not match"
    return None


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip() == "application/json"


def _valid_item(item: Any) -> bool:
    if not isinstance(item, dict) or not isinstance(item.get("code"), str):
        return False
    quantity, amount = item.get("quantity"), item.get("unitAmount")
    return (
        isinstance(quantity, int)
        and quantity > 0
        and isinstance(amount, int | float)
        and not isinstance(amount, bool)
        and amount > 0
    )


def _public(invoice: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in invoice.items() if not k.startswith("_")}
