"""The merchant's lists and the accounting export, answered by the orchestrator:
`GET /collect/payments`, `/collect/refunds`, `/collect/payments/{id}/refunds` and
`/collect/payments/export.csv`. Newest first, `limit`/`starting_after`/`has_more`
(a keyset on (created_at, id): pages never shift while payments arrive), in the key's
merchant and environment.

Included before the Collect router: `export.csv` is a path of its own, never a payment's
reference."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from api_gateway import export_csv
from api_gateway.errors import ApiError
from api_gateway.routes.collect import Who, reject_unknown_query, scope
from api_gateway.rpc import QueryService, json_response
from fluxpay_common.messages import ListPayments, ListRefunds

router = APIRouter(prefix="/api/v1", dependencies=[Depends(reject_unknown_query)])
# Rows asked of the orchestrator at a time while exporting: a large range streams.
EXPORT_PAGE = 500
PaymentStatusFilter = Literal[
    "pending",
    "processing",
    "awaiting_otp",
    "awaiting_payment",
    "completed",
    "failed",
    "cancelled",
    "expired",
    "refunded",
]
RefundStatusFilter = Literal["pending", "completed", "failed"]
Code = r"^[a-z][a-z0-9_]{0,31}$"


def parse_time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ApiError(
            400, "parameter_invalid", f"'{name}' must be an ISO 8601 date-time.", name
        ) from None


def parse_cursor(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ApiError(
            400,
            "invalid_starting_after",
            "'starting_after' is not an object of this list.",
            "starting_after",
        ) from None


@dataclass(frozen=True)
class Filters:
    """What the payment filters ask, as the orchestrator's query fields."""

    operator: str | None
    provider: str | None
    country: str | None
    currency: str | None
    reference_prefix: str | None
    created_gte: datetime | None
    created_lt: datetime | None


async def filters(
    operator: Annotated[str | None, Query(pattern=Code)] = None,
    provider: Annotated[str | None, Query(pattern=Code)] = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    reference_prefix: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    created_gte: Annotated[
        str | None, Query(max_length=64, description="ISO 8601; included")
    ] = None,
    created_lt: Annotated[
        str | None, Query(max_length=64, description="ISO 8601; excluded")
    ] = None,
) -> Filters:
    return Filters(
        operator,
        provider,
        country,
        currency,
        reference_prefix,
        parse_time(created_gte, "created_gte"),
        parse_time(created_lt, "created_lt"),
    )


Filtered = Annotated[Filters, Depends(filters)]
Limit = Annotated[int, Query(ge=1, le=100)]
StartingAfter = Annotated[str | None, Query(max_length=100)]


def _orchestrator(request: Request) -> QueryService:
    service: QueryService = request.app.state.orchestrator_queries
    return service


@router.get("/collect/payments", summary="List payments, newest first")
async def list_payments(
    request: Request,
    who: Who,
    found: Filtered,
    status: Annotated[PaymentStatusFilter | None, Query()] = None,
    limit: Limit = 20,
    starting_after: StartingAfter = None,
) -> Response:
    query = ListPayments(
        **scope(request, who),
        **asdict(found),
        status=status,
        limit=limit,
        starting_after=parse_cursor(starting_after),
    )
    return json_response(await _orchestrator(request).data(query))


@router.get(
    "/collect/payments/export.csv",
    summary="Payments of a date range as CSV (UTF-8 with BOM), for accounting",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def export_payments(
    request: Request,
    who: Who,
    found: Filtered,
    status: Annotated[PaymentStatusFilter | None, Query()] = None,
) -> Response:
    for name in ("created_gte", "created_lt"):
        if getattr(found, name) is None:
            raise ApiError(400, "parameter_missing", f"'{name}' is required.", name)
    query = ListPayments(**scope(request, who), **asdict(found), status=status, limit=EXPORT_PAGE)
    service = _orchestrator(request)
    # The first page before the answer starts: a refusal is still a clean error status.
    first = await service.data(query)
    filename = f"payments_{found.created_gte:%Y%m%dT%H%M%S}_{found.created_lt:%Y%m%dT%H%M%S}.csv"
    return StreamingResponse(
        _stream(service, query, first),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _stream(service: QueryService, query: ListPayments, page: Any) -> AsyncIterator[bytes]:
    yield (export_csv.BOM + export_csv.lines(page["data"], header=True)).encode()
    while page["has_more"]:
        after = uuid.UUID(page["data"][-1]["id"])
        page = await service.data(query.model_copy(update={"starting_after": after}))
        yield export_csv.lines(page["data"]).encode()


@router.get("/collect/refunds", summary="List refunds, newest first")
async def list_refunds(
    request: Request,
    who: Who,
    found: Filtered,
    status: Annotated[RefundStatusFilter | None, Query()] = None,
    limit: Limit = 20,
    starting_after: StartingAfter = None,
) -> Response:
    return await _refunds(request, who, found, None, status, limit, starting_after)


@router.get("/collect/payments/{reference_or_id}/refunds", summary="A payment's refunds")
async def list_payment_refunds(
    request: Request,
    reference_or_id: str,
    who: Who,
    status: Annotated[RefundStatusFilter | None, Query()] = None,
    limit: Limit = 20,
    starting_after: StartingAfter = None,
) -> Response:
    none = Filters(None, None, None, None, None, None, None)
    return await _refunds(request, who, none, reference_or_id, status, limit, starting_after)


async def _refunds(
    request: Request,
    who: Any,
    found: Filters,
    payment: str | None,
    status: str | None,
    limit: int,
    starting_after: str | None,
) -> Response:
    query = ListRefunds(
        **scope(request, who),
        **asdict(found),
        payment=payment,
        status=status,
        limit=limit,
        starting_after=parse_cursor(starting_after),
    )
    return json_response(await _orchestrator(request).data(query))
