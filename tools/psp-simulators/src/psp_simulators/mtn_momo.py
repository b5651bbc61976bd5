"""MTN MoMo Open API simulator: collection (requesttopay) and disbursement refunds.

- `POST /{collection|disbursement}/token/`: Basic `api_user:api_key` and the product's
  `Ocp-Apim-Subscription-Key` -> `{"access_token", "token_type", "expires_in"}`;
- `POST /collection/v1_0/requesttopay`: Bearer token, `X-Reference-Id` (UUID),
  `X-Target-Environment`, optional `X-Callback-Url`; a JSON body whose `amount` is a string
  of digits, `currency` ISO 4217 and `payer` an `MSISDN` party; `202` with no body; a known
  reference id answers `409 RESOURCE_ALREADY_EXIST`;
- `GET /collection/v1_0/requesttopay/{id}`: `PENDING`, `SUCCESSFUL`, `FAILED` + `reason`;
- `POST /disbursement/v1_0/refund` (`referenceIdToRefund`), `GET .../refund/{id}`;
- the callback is PUT once to `X-Callback-Url`, unsigned, never retried (as MTN does).

Settings (env): `FLUXPAY_MTN_MOMO_API_USER`, `FLUXPAY_MTN_MOMO_API_KEY`,
`FLUXPAY_MTN_MOMO_SUBSCRIPTION_KEY`, the `..._DISBURSEMENT_...` trio,
`FLUXPAY_MTN_MOMO_TARGET_ENVIRONMENT`, `PSP_SIM_DELAY_SECONDS`, `PSP_SIM_SESSION_TTL_SECONDS`.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from psp_simulators.common import (
    CallbackSender,
    Customer,
    SimulatorCore,
    approves,
    customer_of,
    env_float,
    env_str,
)


@dataclass
class MtnMomoConfig:
    api_user: str = "dev-mtn-momo-api-user"
    api_key: str = "dev-mtn-momo-api-key"
    subscription_key: str = "dev-mtn-momo-collection-key"
    disbursement_api_user: str = "dev-mtn-momo-disbursement-user"
    disbursement_api_key: str = "dev-mtn-momo-disbursement-api-key"
    disbursement_subscription_key: str = "dev-mtn-momo-disbursement-key"
    target_environment: str = "sandbox"
    delay_seconds: float = 1.0
    session_ttl_seconds: float = 60.0

    @classmethod
    def from_env(cls) -> MtnMomoConfig:
        prefix = "FLUXPAY_MTN_MOMO_"
        return cls(
            api_user=env_str(prefix + "API_USER", cls.api_user),
            api_key=env_str(prefix + "API_KEY", cls.api_key),
            subscription_key=env_str(prefix + "SUBSCRIPTION_KEY", cls.subscription_key),
            disbursement_api_user=env_str(
                prefix + "DISBURSEMENT_API_USER", cls.disbursement_api_user
            ),
            disbursement_api_key=env_str(prefix + "DISBURSEMENT_API_KEY", cls.disbursement_api_key),
            disbursement_subscription_key=env_str(
                prefix + "DISBURSEMENT_SUBSCRIPTION_KEY", cls.disbursement_subscription_key
            ),
            target_environment=env_str(prefix + "TARGET_ENVIRONMENT", cls.target_environment),
            delay_seconds=env_float("PSP_SIM_DELAY_SECONDS", cls.delay_seconds),
            session_ttl_seconds=env_float("PSP_SIM_SESSION_TTL_SECONDS", cls.session_ttl_seconds),
        )

    def credentials(self, product: str) -> tuple[str, str, str]:
        if product == "collection":
            return self.api_user, self.api_key, self.subscription_key
        return (
            self.disbursement_api_user,
            self.disbursement_api_key,
            self.disbursement_subscription_key,
        )


@dataclass
class MtnMomoState:
    requests_to_pay: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> product


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def _bad_body(request: Request) -> JSONResponse | None:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _error(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json.")
    return None


def _transfer_problem(body: Any) -> JSONResponse | None:
    """The Open API's amount is a string of digits (never a JSON number); currency ISO 4217."""
    if not isinstance(body, dict):
        return _error(400, "INVALID_PARAMETER", "The body is a JSON object.")
    amount, currency = body.get("amount"), body.get("currency")
    if not isinstance(amount, str) or not amount.isdigit() or int(amount) <= 0:
        return _error(400, "INVALID_PARAMETER", "amount is a string of digits.")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isupper():
        return _error(400, "INVALID_CURRENCY", "currency is an ISO 4217 code.")
    return None


def create_app(config: MtnMomoConfig | None = None) -> FastAPI:
    config = config or MtnMomoConfig.from_env()
    core = SimulatorCore(callbacks=CallbackSender(attempts=1))  # MTN never retries
    state = MtnMomoState()
    app = FastAPI(title="MTN MoMo Open API simulator")
    core.install(app)
    app.state.sim = state

    def denied(request: Request, product: str) -> JSONResponse | None:
        subscription = config.credentials(product)[2]
        if request.headers.get("ocp-apim-subscription-key") != subscription:
            return _error(401, "ACCESS_DENIED", "Access denied due to invalid subscription key.")
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if state.tokens.get(token) != product:
            return _error(401, "ACCESS_DENIED", "Access token is missing or invalid.")
        if request.headers.get("x-target-environment") != config.target_environment:
            return _error(400, "NOT_ALLOWED_TARGET_ENVIRONMENT", "Wrong target environment.")
        return None

    def reference_id_of(request: Request) -> str | None:
        raw = request.headers.get("x-reference-id", "")
        try:
            parsed = uuid.UUID(raw)
        except ValueError:
            return None
        # Refused, not coerced: `UUID(raw, version=4)` would rewrite another version's bits
        # and store the resource under an id the client never asks for.
        return str(parsed) if parsed.version == 4 else None

    async def call_back(url: str | None, resource: dict[str, Any]) -> None:
        body = orjson.dumps({k: v for k, v in resource.items() if not k.startswith("_")})
        await core.callbacks.send(url, body, {"Content-Type": "application/json"}, method="PUT")

    @app.post("/{product}/token/")
    async def token(product: str, request: Request) -> JSONResponse:
        if product not in ("collection", "disbursement"):
            return _error(404, "RESOURCE_NOT_FOUND", "Unknown product.")
        user, key, subscription = config.credentials(product)
        expected = "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()
        if request.headers.get("ocp-apim-subscription-key") != subscription or not (
            hmac.compare_digest(request.headers.get("authorization", ""), expected)
        ):
            return _error(401, "ACCESS_DENIED", "Access denied.")
        value = secrets.token_urlsafe(24)
        state.tokens[value] = product
        return JSONResponse(
            {"access_token": value, "token_type": "access_token", "expires_in": 3600}
        )

    @app.post("/collection/v1_0/requesttopay")
    async def request_to_pay(request: Request) -> Response:
        if (refusal := denied(request, "collection")) is not None:
            return refusal
        reference_id = reference_id_of(request)
        if reference_id is None:
            return _error(400, "INVALID_REFERENCE_ID", "X-Reference-Id must be a UUID v4.")
        if reference_id in state.requests_to_pay:
            return _error(
                409, "RESOURCE_ALREADY_EXIST", "Duplicated reference id. Creation failed."
            )
        if (bad := _bad_body(request)) is not None:
            return bad
        body = await request.json()
        payer = body.get("payer") or {}
        if (problem := _transfer_problem(body)) is not None:
            return problem
        if payer.get("partyIdType") != "MSISDN" or not str(payer.get("partyId")).isdigit():
            return _error(400, "INVALID_PARAMETER", "payer is an MSISDN party of digits.")
        resource = {
            "amount": body["amount"],
            "currency": body.get("currency"),
            "externalId": body.get("externalId"),
            "payer": payer,
            "payerMessage": body.get("payerMessage"),
            "payeeNote": body.get("payeeNote"),
            "status": "PENDING",
        }
        state.requests_to_pay[reference_id] = resource
        customer = customer_of(payer.get("partyId"))
        url = request.headers.get("x-callback-url")
        if customer is Customer.APPROVES_WITHOUT_CALLBACK:
            url = None

        async def customer_acts() -> None:
            if approves(customer):
                resource["status"] = "SUCCESSFUL"
                resource["financialTransactionId"] = str(secrets.randbelow(10**9))
            else:
                resource["status"] = "FAILED"
                resource["reason"] = "NOT_ENOUGH_FUNDS"
            await call_back(url, resource)

        async def expires() -> None:
            if resource["status"] == "PENDING":
                resource["status"] = "FAILED"
                resource["reason"] = "EXPIRED"
                await call_back(url, resource)

        if customer is not Customer.SILENT:
            core.later(config.delay_seconds, customer_acts)
        core.later(config.session_ttl_seconds, expires)
        return Response(status_code=202)

    @app.get("/collection/v1_0/requesttopay/{reference_id}")
    async def get_request_to_pay(reference_id: str, request: Request) -> JSONResponse:
        if (refusal := denied(request, "collection")) is not None:
            return refusal
        resource = state.requests_to_pay.get(reference_id)
        if resource is None:
            return _error(404, "RESOURCE_NOT_FOUND", "Requested resource was not found.")
        return JSONResponse(resource)

    @app.post("/disbursement/v1_0/refund")
    async def refund(request: Request) -> Response:
        if (refusal := denied(request, "disbursement")) is not None:
            return refusal
        reference_id = reference_id_of(request)
        if reference_id is None:
            return _error(400, "INVALID_REFERENCE_ID", "X-Reference-Id must be a UUID v4.")
        if reference_id in state.refunds:
            return _error(409, "RESOURCE_ALREADY_EXIST", "Duplicated reference id.")
        if (bad := _bad_body(request)) is not None:
            return bad
        body = await request.json()
        if (problem := _transfer_problem(body)) is not None:
            return problem
        original = state.requests_to_pay.get(str(body.get("referenceIdToRefund")))
        if original is None or original["status"] != "SUCCESSFUL":
            return _error(400, "INVALID_REFERENCE_ID_TO_REFUND", "Nothing to refund.")
        resource = {
            "amount": body.get("amount"),
            "currency": body.get("currency"),
            "externalId": body.get("externalId"),
            "payee": original["payer"],
            "status": "PENDING",
        }
        state.refunds[reference_id] = resource
        url = request.headers.get("x-callback-url")

        async def settle() -> None:
            if customer_of(original["payer"].get("partyId")) is Customer.REFUND_FAILS:
                resource["status"] = "FAILED"
                resource["reason"] = "COULD_NOT_PERFORM_TRANSACTION"
            else:
                resource["status"] = "SUCCESSFUL"
                resource["financialTransactionId"] = str(secrets.randbelow(10**9))
            await call_back(url, resource)

        core.later(config.delay_seconds, settle)
        return Response(status_code=202)

    @app.get("/disbursement/v1_0/refund/{reference_id}")
    async def get_refund(reference_id: str, request: Request) -> JSONResponse:
        if (refusal := denied(request, "disbursement")) is not None:
            return refusal
        resource = state.refunds.get(reference_id)
        if resource is None:
            return _error(404, "RESOURCE_NOT_FOUND", "Requested resource was not found.")
        return JSONResponse(resource)

    return app
