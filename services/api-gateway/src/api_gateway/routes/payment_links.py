"""Payment links: the merchant's API (`/api/v1/payment_links`, `full` keys for changes),
the public state of a link (`GET /api/v1/links/{slug}`, no key, limited per client IP)
and the payer's page (`/pay/{slug}`): the payer pays through an ordinary hosted payment,
carrying the link's id in its metadata, on the existing checkout page."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import HTMLResponse, RedirectResponse, Response

from api_gateway import link_store
from api_gateway.access import limit_public
from api_gateway.errors import ApiError
from api_gateway.payment_links import Link
from api_gateway.routes.checkout import PAGE_HEADERS
from api_gateway.routes.collect import Who, reject_unknown_query
from api_gateway.rpc import Orchestrator, json_response, raise_for_error
from api_gateway.schemas import MAX_AMOUNT, Description, Metadata
from fluxpay_common import catalog
from fluxpay_common.messages import CreatePayment

router = APIRouter(prefix="/api/v1", dependencies=[Depends(reject_unknown_query)])
public = APIRouter(dependencies=[Depends(limit_public), Depends(reject_unknown_query)])
PAGE = (resources.files("api_gateway") / "static" / "link.html").read_text(encoding="utf-8")
# The hosted payment's expiry: the time a payer has on the checkout page.
LINK_PAYMENT_EXPIRES_IN = 900
PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")
Amount = Annotated[int, Field(ge=100, le=MAX_AMOUNT)]


class PaymentLinkCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    amount: Amount = None  # type: ignore[assignment]
    min_amount: Amount = None  # type: ignore[assignment]
    max_amount: Amount = None  # type: ignore[assignment]
    currency: Literal["XOF", "XAF", "RWF"]
    country: Literal["BJ", "TG", "CI", "RW"]
    description: Description = None  # type: ignore[assignment]
    usage_limit: Annotated[int, Field(ge=1, le=1_000_000)] = None  # type: ignore[assignment]
    expires_at: datetime = None  # type: ignore[assignment]
    metadata: Metadata = None  # type: ignore[assignment]

    @field_validator("expires_at", mode="before")
    @classmethod
    def _iso(cls, value: Any) -> Any:
        return datetime.fromisoformat(value) if isinstance(value, str) else value


def _checked(body: PaymentLinkCreate) -> dict[str, Any]:
    if body.amount is not None and (body.min_amount or body.max_amount):
        raise ApiError(
            400,
            "parameter_invalid",
            "Give either 'amount' (fixed) or 'min_amount'/'max_amount' (the payer chooses).",
            "min_amount" if body.min_amount else "max_amount",
        )
    if body.min_amount and body.max_amount and body.min_amount > body.max_amount:
        raise ApiError(400, "parameter_invalid", "'min_amount' exceeds 'max_amount'.", "max_amount")
    expected = catalog.COUNTRIES[body.country].currency
    if body.currency != expected:
        raise ApiError(
            400,
            "currency_not_supported",
            f"Payments in {body.country} are in {expected}, not {body.currency}.",
            "currency",
        )
    fields = body.model_dump()
    if body.expires_at is not None:
        when = body.expires_at if body.expires_at.tzinfo else body.expires_at.replace(tzinfo=UTC)
        if when <= datetime.now(UTC):
            raise ApiError(400, "parameter_invalid", "'expires_at' is in the past.", "expires_at")
        fields["expires_at"] = when
    return fields


def link_url(request: Request, slug: str) -> str:
    base: str = request.app.state.settings.checkout_base_url
    return f"{base.removesuffix('/checkout')}/pay/{slug}"


def link_body(request: Request, found: Link) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "object": "payment_link",
        "id": str(found.id),
        "slug": found.slug,
        "url": link_url(request, found.slug),
        "active": found.active,
        "environment": found.environment,
        "amount": found.amount,
        "min_amount": found.min_amount,
        "max_amount": found.max_amount,
        "currency": found.currency,
        "country": found.country,
        "description": found.description,
        "usage_limit": found.usage_limit,
        "usage_count": found.completed_count,
        "payments_in_progress": found.open_count,
        "expires_at": found.expires_at.isoformat() if found.expires_at else None,
        "is_expired": found.is_expired(now),
        "usage_limit_reached": found.usage_limit_reached,
        "can_pay": found.can_pay(now),
        "created_at": found.created_at.isoformat(),
    }


@router.post("/payment_links", status_code=201, summary="Create a payment link")
async def create_link(request: Request, body: PaymentLinkCreate, who: Who) -> Response:
    created = await link_store.create(
        request.app.state.pool, _checked(body), who.merchant_id, who.environment
    )
    return json_response(link_body(request, created), 201)


@router.get("/payment_links", summary="List payment links, newest first")
async def list_links(
    request: Request,
    who: Who,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    links, more = await link_store.page(
        request.app.state.pool, who.merchant_id, who.environment, limit, starting_after
    )
    data = [link_body(request, found) for found in links]
    return json_response({"object": "list", "data": data, "has_more": more})


@router.get("/payment_links/{link_id}", summary="A payment link")
async def get_link(request: Request, link_id: str, who: Who) -> Response:
    found = await link_store.by_id(
        request.app.state.pool, who.merchant_id, who.environment, link_id
    )
    return json_response(link_body(request, found))


@router.delete("/payment_links/{link_id}", summary="Deactivate a payment link")
async def deactivate_link(request: Request, link_id: str, who: Who) -> Response:
    found = await link_store.deactivate(
        request.app.state.pool, who.merchant_id, who.environment, link_id
    )
    return json_response(link_body(request, found))


async def _public_state(request: Request, found: Link) -> dict[str, Any]:
    """What anyone holding the link may know: nothing of the merchant's internals."""
    now = datetime.now(UTC)
    low, high = found.bounds
    return {
        "object": "payment_link.public",
        "slug": found.slug,
        "merchant_name": await link_store.merchant_name(request.app.state.pool, found.merchant_id),
        "description": found.description,
        "currency": found.currency,
        "country": found.country,
        "amount": found.amount,
        "min_amount": low,
        "max_amount": high,
        "is_expired": found.is_expired(now),
        "usage_limit_reached": found.usage_limit_reached,
        "can_pay": found.can_pay(now),
        "livemode": found.environment == "live",
    }


@public.get("/api/v1/links/{slug}", summary="A payment link's public state (no API key)")
async def public_link(request: Request, slug: str) -> Response:
    found = await link_store.by_slug(request.app.state.pool, slug)
    return json_response(await _public_state(request, found))


@public.get("/pay/{slug}", include_in_schema=False)
async def link_page(request: Request, slug: str) -> Response:
    found = await link_store.by_slug(request.app.state.pool, slug)
    state = await _public_state(request, found)
    return HTMLResponse(_render(state, found), headers=PAGE_HEADERS)


@public.post("/pay/{slug}", include_in_schema=False)
async def pay(request: Request, slug: str) -> Response:
    """The payer's choice: a hosted payment of the link's merchant, then its checkout page."""
    chosen = await _chosen_amount(request)
    pool = request.app.state.pool
    found, use_id, amount = await link_store.reserve(pool, slug, datetime.now(UTC), chosen)
    try:
        payment_id = await _create_payment(request, found, use_id, amount)
    except BaseException:
        await link_store.release(pool, use_id)
        raise
    await link_store.attach(pool, use_id, payment_id)
    await pool.execute(
        "INSERT INTO checkout_session (payment_id, merchant_id, environment)"
        " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        payment_id,
        found.merchant_id,
        found.environment,
    )
    base: str = request.app.state.settings.checkout_base_url
    return RedirectResponse(f"{base}/{payment_id}", status_code=303)


async def _create_payment(request: Request, found: Link, use_id: uuid.UUID, amount: int) -> Any:
    orchestrator: Orchestrator = request.app.state.orchestrator
    reply = await orchestrator.call(
        CreatePayment(
            correlation_id=request.state.correlation_id,
            merchant_id=found.merchant_id,
            environment=found.environment,  # type: ignore[arg-type]
            idempotency_key=str(use_id),
            reference=f"link-{found.slug}-{use_id.hex[:12]}",
            amount=amount,
            currency=found.currency,
            country=found.country,
            mode="hosted",
            description=found.description,
            expires_in_seconds=LINK_PAYMENT_EXPIRES_IN,
            metadata={"payment_link_id": str(found.id), "payment_link_use_id": str(use_id)},
        )
    )
    raise_for_error(reply)
    assert reply.payment is not None
    return reply.payment.id


async def _chosen_amount(request: Request) -> int | None:
    """The payer's amount from the page's form (or a JSON body), when the link lets them."""
    raw = await request.body()
    if not raw:
        return None
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind == "application/x-www-form-urlencoded":
            values = parse_qs(raw.decode("utf-8"), strict_parsing=True).get("amount", [""])
            value: Any = values[0] or None
        else:
            value = orjson.loads(raw).get("amount")
        return None if value is None else int(value)
    except (ValueError, AttributeError, UnicodeDecodeError, TypeError, orjson.JSONDecodeError):
        raise ApiError(
            400, "parameter_invalid", "'amount' must be a whole number.", "amount"
        ) from None


def _render(state: dict[str, Any], found: Link) -> str:
    def text(value: Any) -> str:
        return html.escape(str(value if value is not None else ""))

    if found.amount is not None:
        amount = f"{found.amount:,} {found.currency}".replace(",", " ")
        field = ""
    else:
        amount = f"{state['min_amount']} – {state['max_amount']} {found.currency}"
        field = (
            '<label class="field" for="amount">Montant</label>'
            f'<input id="amount" name="amount" type="number" min="{state["min_amount"]}"'
            f' max="{state["max_amount"]}" required>'
        )
    notice = ""
    if not state["can_pay"]:
        notice = '<p class="error">Ce lien de paiement n\'est plus disponible.</p>'
    values = {
        "MERCHANT": text(state["merchant_name"]),
        "DESCRIPTION": text(found.description),
        "AMOUNT": text(amount),
        "SLUG": text(found.slug),
        "AMOUNT_FIELD": field,
        "NOTICE": notice,
        "HIDDEN": "" if state["can_pay"] else "hidden",
    }
    # One pass: a merchant's name holding `{{SLUG}}` stays text.
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], PAGE)
