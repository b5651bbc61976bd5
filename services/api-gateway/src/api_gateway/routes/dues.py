"""Payment types, their payers and dues (seed 001): `/api/v1/payment_types`,
`/api/v1/payment_types/{id}/payers`, `/api/v1/dues`. Changes need a `full` key (route
class `management`) and are audited; reads are open to every role."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from starlette.responses import Response

from api_gateway import dues_scheduler, dues_store
from api_gateway.auth import Principal
from api_gateway.errors import ApiError
from api_gateway.routes.collect import Who, reject_unknown_query
from api_gateway.rpc import json_response
from api_gateway.schemas import MAX_AMOUNT
from api_gateway.validation import check_operator_and_phone, normalized_phone
from fluxpay_common import catalog
from fluxpay_common.messages import CancelPayment

router = APIRouter(prefix="/api/v1", dependencies=[Depends(reject_unknown_query)])
Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]
Limit = Annotated[int, Query(ge=1, le=100)]
StartingAfter = Annotated[str | None, Query(max_length=100)]


def _iso_date(value: Any) -> Any:
    return date.fromisoformat(value) if isinstance(value, str) else value


class PaymentTypeCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    name: Name
    amount: Annotated[int, Field(ge=100, le=MAX_AMOUNT)]
    currency: Literal["XOF", "XAF", "RWF"]
    country: Literal["BJ", "TG", "CI", "RW"]
    recurring: bool
    interval: Literal["monthly", "weekly"] = None  # type: ignore[assignment]
    # Monthly: 1-28; weekly: ISO day of the week, 1 (Monday) to 7.
    due_day: Annotated[int, Field(ge=1, le=28)] = None  # type: ignore[assignment]
    # One-off types: the day it is due.
    due_date: date = None  # type: ignore[assignment]
    delivery: Literal["link", "push"] = "link"

    _due_date = field_validator("due_date", mode="before")(lambda v: _iso_date(v))


class PayerEnroll(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    name: Name
    phone: Annotated[str, StringConstraints(min_length=4, max_length=32)]
    operator: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class DuesRun(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    date: date

    _date = field_validator("date", mode="before")(lambda v: _iso_date(v))


def _checked_type(body: PaymentTypeCreate) -> dict[str, Any]:
    expected = catalog.COUNTRIES[body.country].currency
    if body.currency != expected:
        raise ApiError(
            400,
            "currency_not_supported",
            f"Payments in {body.country} are in {expected}, not {body.currency}.",
            "currency",
        )
    if body.recurring:
        for name in ("interval", "due_day"):
            if getattr(body, name) is None:
                raise ApiError(
                    400, "parameter_missing", f"'{name}' is required when recurring.", name
                )
        if body.due_date is not None:
            raise ApiError(400, "parameter_invalid", "'due_date' is for one-off types.", "due_date")
        if body.interval == "weekly" and body.due_day > 7:
            raise ApiError(
                400, "parameter_invalid", "A weekly 'due_day' is 1 (Monday) to 7.", "due_day"
            )
    else:
        if body.due_date is None:
            raise ApiError(
                400, "parameter_missing", "'due_date' is required when one-off.", "due_date"
            )
        for name in ("interval", "due_day"):
            if getattr(body, name) is not None:
                raise ApiError(400, "parameter_invalid", f"'{name}' is for recurring types.", name)
    return body.model_dump()


def _list(rows: list[Any], more: bool, render: Any) -> Response:
    return json_response({"object": "list", "data": [render(r) for r in rows], "has_more": more})


@router.post("/payment_types", status_code=201, summary="Create a payment type")
async def create_type(request: Request, body: PaymentTypeCreate, who: Who) -> Response:
    row = await dues_store.create_type(
        request.app.state.pool, who.merchant_id, who.environment, _checked_type(body)
    )
    return json_response(dues_store.type_body(row), 201)


@router.get("/payment_types", summary="List payment types, newest first")
async def list_types(
    request: Request, who: Who, limit: Limit = 20, starting_after: StartingAfter = None
) -> Response:
    rows, more = await dues_store.page(
        request.app.state.pool,
        "payment_type",
        "x.merchant_id = $1 AND x.environment = $2",
        [who.merchant_id, who.environment],
        limit,
        starting_after,
    )
    return _list(rows, more, dues_store.type_body)


@router.get("/payment_types/{payment_type_id}", summary="A payment type")
async def get_type(request: Request, payment_type_id: str, who: Who) -> Response:
    row = await dues_store.get_type(
        request.app.state.pool, who.merchant_id, who.environment, payment_type_id
    )
    return json_response(dues_store.type_body(row))


@router.delete("/payment_types/{payment_type_id}", summary="Deactivate a payment type")
async def deactivate_type(request: Request, payment_type_id: str, who: Who) -> Response:
    row = await dues_store.deactivate_type(
        request.app.state.pool, who.merchant_id, who.environment, payment_type_id
    )
    return json_response(dues_store.type_body(row))


@router.post("/payment_types/{payment_type_id}/payers", status_code=201, summary="Enrol a payer")
async def enroll(request: Request, payment_type_id: str, body: PayerEnroll, who: Who) -> Response:
    pool = request.app.state.pool
    payment_type = await dues_store.get_type(
        pool, who.merchant_id, who.environment, payment_type_id
    )
    phone = normalized_phone(body.phone)
    check_operator_and_phone(payment_type["country"], body.operator, phone)
    fields = {"name": body.name, "phone": phone, "operator": body.operator}
    row = await dues_store.enroll(pool, who.merchant_id, who.environment, payment_type_id, fields)
    return json_response(dues_store.payer_body(row), 201)


@router.get("/payment_types/{payment_type_id}/payers", summary="A payment type's payers")
async def list_payers(
    request: Request,
    payment_type_id: str,
    who: Who,
    limit: Limit = 20,
    starting_after: StartingAfter = None,
) -> Response:
    pool = request.app.state.pool
    payment_type = await dues_store.get_type(
        pool, who.merchant_id, who.environment, payment_type_id
    )
    rows, more = await _payers(pool, payment_type["id"], limit, starting_after)
    return _list(rows, more, dues_store.payer_body)


async def _payers(pool: Any, type_id: Any, limit: int, after: str | None) -> Any:
    # A payer's enrolment time orders its list (the shared pager reads `created_at`).
    return await dues_store.page(
        pool,
        "(SELECT *, enrolled_at AS created_at FROM payer)",
        "x.payment_type_id = $1",
        [type_id],
        limit,
        after,
    )


@router.delete("/payment_types/{payment_type_id}/payers/{payer_id}", summary="Remove a payer")
async def remove_payer(request: Request, payment_type_id: str, payer_id: str, who: Who) -> Response:
    row = await dues_store.unenroll(
        request.app.state.pool, who.merchant_id, who.environment, payment_type_id, payer_id
    )
    return json_response(dues_store.payer_body(row))


@router.get("/dues", summary="List dues (who paid, who owes), newest first")
async def list_dues(
    request: Request,
    who: Who,
    payment_type_id: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[
        Literal["issuing", "issued", "paid", "overdue", "cancelled"] | None, Query()
    ] = None,
    period: Annotated[str | None, Query(max_length=16, pattern=r"^[0-9A-Za-z-]+$")] = None,
    limit: Limit = 20,
    starting_after: StartingAfter = None,
) -> Response:
    pool = request.app.state.pool
    type_id = None
    if payment_type_id is not None:
        type_id = (
            await dues_store.get_type(pool, who.merchant_id, who.environment, payment_type_id)
        )["id"]
    rows, more = await dues_store.page(
        pool,
        "due",
        "x.merchant_id = $1 AND x.environment = $2 AND ($3::uuid IS NULL OR"
        " x.payment_type_id = $3) AND ($4::text IS NULL OR x.status = $4)"
        " AND ($5::text IS NULL OR x.period = $5)",
        [who.merchant_id, who.environment, type_id, status, period],
        limit,
        starting_after,
        select=dues_store.DUE_LIST_SELECT,
    )
    return _list(rows, more, dues_store.due_body)


@router.get("/dues/{due_id}", summary="A due")
async def get_due(request: Request, due_id: str, who: Who) -> Response:
    row = await dues_store.get_due(request.app.state.pool, who.merchant_id, who.environment, due_id)
    return json_response(dues_store.due_body(row))


@router.post("/dues/{due_id}/cancel", summary="Cancel a due (its payment is cancelled too)")
async def cancel_due(request: Request, due_id: str, who: Who) -> Response:
    row = await dues_store.cancel_due(
        request.app.state.pool, who.merchant_id, who.environment, due_id
    )
    await _cancel_payment(request, who, row)
    return json_response(dues_store.due_body(row))


async def _cancel_payment(request: Request, who: Principal, row: Any) -> None:
    """Best effort: a payment already completed stays so (the due is then paid)."""
    if row["payment_id"] is None:
        return
    await request.app.state.orchestrator.call(
        CancelPayment(
            correlation_id=request.state.correlation_id,
            merchant_id=who.merchant_id,
            environment=who.environment,  # type: ignore[arg-type]
            reference_or_id=str(row["payment_id"]),
            reason="due_cancelled",
        )
    )


@router.post("/dues/run", summary="Test keys: run the dues scheduler for a given date")
async def run_scheduler(request: Request, body: DuesRun, who: Who) -> Response:
    """What the background scheduler does each day, for this merchant's test environment
    and the date given: to try dues without waiting for the calendar."""
    if who.environment != "test":
        raise ApiError(
            403,
            "test_key_required",
            "Only a test key may run the dues scheduler on demand.",
            kind="permission_error",
        )
    outcome = await dues_scheduler.run(
        request.app.state.pool,
        request.app.state.orchestrator,
        request.app.state.dues_policy,
        body.date,
        dues_scheduler.Scope(who.merchant_id, who.environment),
    )
    return json_response({"object": "dues_run", "date": body.date.isoformat(), **(outcome or {})})
