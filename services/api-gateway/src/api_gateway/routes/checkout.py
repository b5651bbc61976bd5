"""The hosted checkout page: `/checkout/{payment_id}`, public, the payment id is the link.

The customer picks an operator of the payment's country, enters a phone number (and the OTP
where the operator needs one) and watches the outcome live. From the customer's choice on,
the payment continues as a direct one. One HTML page with its script and styles, served
here (no external assets, no inline script or style), French first.
"""

from __future__ import annotations

import uuid
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.responses import HTMLResponse, Response

from api_gateway.errors import ApiError
from api_gateway.rpc import Orchestrator, json_response, raise_for_error
from api_gateway.validation import check_operator_and_phone, normalized_phone
from fluxpay_common import catalog
from fluxpay_common.messages import ConfirmPayment, GetPayment, PaymentView, SelectOperator

router = APIRouter(prefix="/checkout", include_in_schema=False)
STATIC = resources.files("api_gateway") / "static"
PAGE = (STATIC / "checkout.html").read_text(encoding="utf-8")
ASSETS = {
    "checkout.js": ((STATIC / "checkout.js").read_bytes(), "text/javascript; charset=utf-8"),
    "checkout.css": ((STATIC / "checkout.css").read_bytes(), "text/css; charset=utf-8"),
}
# The page runs only our own script and styles (no inline ones: an injected one would not
# run), talks only to us, and is framed by nobody (no clickjacking of the Pay button).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self';"
    " connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none';"
    " frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


class Choice(BaseModel):
    model_config = ConfigDict(strict=True)
    operator: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    phone: Annotated[str, StringConstraints(min_length=4, max_length=32)]


class Otp(BaseModel):
    model_config = ConfigDict(strict=True)
    otp: Annotated[str, StringConstraints(min_length=4, max_length=8)]


async def _session(request: Request, payment_id: str) -> Any:
    try:
        pid = uuid.UUID(payment_id)
    except ValueError:
        pid = None
    row = None
    if pid is not None:
        row = await request.app.state.pool.fetchrow(
            "SELECT s.merchant_id, s.environment, m.name AS merchant_name"
            " FROM checkout_session s JOIN merchant m ON m.id = s.merchant_id"
            " WHERE s.payment_id = $1",
            pid,
        )
    if row is None:
        raise ApiError(404, "checkout_not_found", "This payment link does not exist.")
    return row


def _state(payment: PaymentView, merchant_name: str) -> dict[str, Any]:
    """What the page may show the customer: nothing of the merchant's internals."""
    return {
        "id": str(payment.id),
        # Whom the customer pays: the merchant's name, as the operator registered it.
        "merchant_name": merchant_name,
        "status": payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "country": payment.country,
        "description": payment.description,
        "operator": payment.operator,
        "expires_at": payment.expires_at.isoformat() if payment.expires_at else None,
        "failure_code": payment.failure_code,
        "next_action": payment.next_action.type,
        "operators": [op.as_dict() for op in catalog.operators_of(payment.country)],
        # A provider's own page (a card on Stripe Checkout): the customer continues there.
        "redirect_url": (
            payment.checkout_url
            if payment.checkout_url and f"/checkout/{payment.id}" not in payment.checkout_url
            else None
        ),
    }


async def _call(request: Request, command: Any) -> PaymentView:
    orchestrator: Orchestrator = request.app.state.orchestrator
    reply = await orchestrator.call(command)
    raise_for_error(reply)
    assert reply.payment is not None
    return reply.payment


def _scope(request: Request, session: Any, payment_id: str) -> dict[str, Any]:
    return {
        "correlation_id": request.state.correlation_id,
        "merchant_id": session["merchant_id"],
        "environment": session["environment"],
        "reference_or_id": payment_id,
    }


@router.get("/assets/{name}")
async def asset(name: str) -> Response:
    if name not in ASSETS:
        raise ApiError(404, "resource_not_found", "No such file.")
    content, media_type = ASSETS[name]
    return Response(
        content, media_type=media_type, headers={"Cache-Control": "public, max-age=300"}
    )


@router.get("/{payment_id}")
async def page(request: Request, payment_id: str) -> Response:
    await _session(request, payment_id)
    return HTMLResponse(
        PAGE.replace("{{PAYMENT_ID}}", str(uuid.UUID(payment_id))), headers=PAGE_HEADERS
    )


@router.get("/{payment_id}/state")
async def state(request: Request, payment_id: str) -> Response:
    session = await _session(request, payment_id)
    payment = await _call(request, GetPayment(**_scope(request, session, payment_id)))
    return json_response(
        _state(payment, session["merchant_name"]), headers={"Cache-Control": "no-store"}
    )


@router.post("/{payment_id}/select")
async def select(request: Request, payment_id: str, choice: Choice) -> Response:
    session = await _session(request, payment_id)
    current = await _call(request, GetPayment(**_scope(request, session, payment_id)))
    phone = normalized_phone(choice.phone)
    check_operator_and_phone(current.country, choice.operator, phone)
    payment = await _call(
        request,
        SelectOperator(
            **_scope(request, session, payment_id), operator=choice.operator, phone=phone
        ),
    )
    return json_response(_state(payment, session["merchant_name"]))


@router.post("/{payment_id}/otp")
async def otp(request: Request, payment_id: str, body: Otp) -> Response:
    session = await _session(request, payment_id)
    payment = await _call(
        request, ConfirmPayment(**_scope(request, session, payment_id), otp=body.otp)
    )
    return json_response(_state(payment, session["merchant_name"]))
