"""Merchant account endpoints beyond the seed: balance (ledger), events and the webhook
endpoint (webhook dispatcher). Same authentication, same ApiError shape, same pagination
(`limit`, `starting_after`) as a merchant expects from a serious PSP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator
from starlette.responses import Response

from api_gateway.admin import rotate_webhook_secret, set_webhook_url
from api_gateway.routes.collect import Who, reject_unknown_query, scope
from api_gateway.rpc import QueryService, json_response
from api_gateway.schemas import absolute_http_url
from fluxpay_common.crypto import SecretBox
from fluxpay_common.messages import LedgerQuery, WebhooksCommand

router = APIRouter(dependencies=[Depends(reject_unknown_query)])
Limit = Annotated[int, Query(ge=1, le=100)]
# No NUL: PostgreSQL text cannot hold one (it answered 500).
NO_NUL = r"^[^\x00]*$"
Cursor = Annotated[str | None, Query(max_length=100, pattern=NO_NUL)]


def _ledger(request: Request) -> QueryService:
    service: QueryService = request.app.state.ledger
    return service


def _webhooks(request: Request) -> QueryService:
    service: QueryService = request.app.state.webhooks
    return service


@router.get("/api/v1/balance")
async def balance(request: Request, who: Who) -> Response:
    data = await _ledger(request).data(LedgerQuery(type="ledger.balance", **scope(request, who)))
    return json_response(data)


@router.get("/api/v1/balance/transactions")
async def balance_transactions(
    request: Request, who: Who, limit: Limit = 20, starting_after: Cursor = None
) -> Response:
    data = await _ledger(request).data(
        LedgerQuery(
            type="ledger.transactions",
            limit=limit,
            starting_after=starting_after,
            **scope(request, who),
        )
    )
    return json_response(data)


@router.get("/api/v1/events")
async def list_events(
    request: Request,
    who: Who,
    limit: Limit = 20,
    starting_after: Cursor = None,
    type: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
) -> Response:
    data = await _webhooks(request).data(
        WebhooksCommand(
            type="webhooks.list_events",
            limit=limit,
            starting_after=starting_after,
            event_type=type,
            **scope(request, who),
        )
    )
    return json_response(data)


@router.get("/api/v1/events/{event_id}")
async def get_event(request: Request, event_id: str, who: Who) -> Response:
    data = await _webhooks(request).data(
        WebhooksCommand(type="webhooks.get_event", event_id=event_id, **scope(request, who))
    )
    return json_response(data)


@router.post("/api/v1/events/{event_id}/replay")
async def replay_event(request: Request, event_id: str, who: Who) -> Response:
    data = await _webhooks(request).data(
        WebhooksCommand(type="webhooks.replay_event", event_id=event_id, **scope(request, who))
    )
    return json_response(data, 202)


class ReplayFailed(BaseModel):
    model_config = ConfigDict(strict=True)
    since: datetime

    @field_validator("since", mode="before")
    @classmethod
    def _iso(cls, value: Any) -> Any:
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    @field_validator("since")
    @classmethod
    def _storable(cls, value: datetime) -> datetime:
        # Year 1 with a positive offset is year 0 in UTC, which PostgreSQL cannot hold.
        if not 2000 <= value.year <= 9998:
            raise ValueError("must be a date-time between the years 2000 and 9998")
        return value


@router.post("/api/v1/events/replay")
async def replay_failed(request: Request, body: ReplayFailed, who: Who) -> Response:
    since = body.since if body.since.tzinfo else body.since.replace(tzinfo=UTC)
    data = await _webhooks(request).data(
        WebhooksCommand(type="webhooks.replay_failed", since=since, **scope(request, who))
    )
    return json_response(data, 202)


@router.post("/api/webhooks/test")
@router.post("/api/v1/webhooks/test")
async def send_test_event(request: Request, who: Who) -> Response:
    data = await _webhooks(request).data(
        WebhooksCommand(type="webhooks.send_test", **scope(request, who))
    )
    return json_response(data, 202)


@router.get("/api/v1/webhook_endpoint")
async def get_endpoint(request: Request, who: Who) -> Response:
    data = await _webhooks(request).data(
        WebhooksCommand(type="webhooks.get_endpoint", **scope(request, who))
    )
    return json_response(data)


class Endpoint(BaseModel):
    model_config = ConfigDict(strict=True)
    url: Annotated[str, StringConstraints(max_length=2048)]

    _url = field_validator("url")(lambda v: absolute_http_url(v))


@router.put("/api/v1/webhook_endpoint")
async def put_endpoint(request: Request, body: Endpoint, who: Who) -> Response:
    await set_webhook_url(request.app.state.pool, who.merchant_id, body.url)
    return json_response({"object": "webhook_endpoint", "url": body.url, "status": "enabled"})


@router.post("/api/v1/webhook_endpoint/rotate_secret")
async def rotate_secret(request: Request, who: Who) -> Response:
    """A new secret, shown once; the previous one stays valid for 24 hours."""
    box = SecretBox(request.app.state.settings.secrets_key.get_secret_value())
    overlap_until = datetime.now(UTC) + timedelta(hours=24)
    secret = await rotate_webhook_secret(
        request.app.state.pool, box, who.merchant_id, overlap_until
    )
    return json_response(
        {
            "object": "webhook_secret",
            "secret": secret,
            "previous_secret_expires_at": overlap_until.isoformat(),
        }
    )
