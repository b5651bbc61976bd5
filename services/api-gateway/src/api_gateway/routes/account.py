"""Merchant account endpoints beyond the seed: balance (ledger), events and the webhook
endpoint (webhook dispatcher). Same authentication, same ApiError shape, same pagination
(`limit`, `starting_after`) as a merchant expects from a serious PSP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator
from starlette.responses import Response

from api_gateway import webhook_endpoints
from api_gateway.auth import Principal
from api_gateway.errors import ApiError
from api_gateway.routes.collect import Who, reject_unknown_query, scope
from api_gateway.rpc import QueryService, json_response
from fluxpay_common.crypto import SecretBox
from fluxpay_common.messages import Environment, LedgerQuery, WebhooksCommand
from fluxpay_common.ssrf import UnsafeDestination, check_url

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


def _safe_url(request: Request, url: str, environment: Environment) -> str:
    """The SSRF policy when a URL is saved, so a merchant learns at once why it cannot work
    (the dispatcher checks again, after DNS, before every delivery)."""
    allow_private = request.app.state.settings.webhook_allow_private_destinations
    try:
        check_url(url, environment, allow_private=allow_private)
    except UnsafeDestination as refusal:
        raise ApiError(400, refusal.code, f"'url' is refused: {refusal.reason}.", "url") from None
    return url


@router.put("/api/v1/webhook_endpoint")
async def put_endpoint(request: Request, body: Endpoint, who: Who) -> Response:
    """The URL of the API key's environment's endpoint; the other environment's is untouched."""
    url = _safe_url(request, body.url, _environment(who))
    await webhook_endpoints.set_url(request.app.state.pool, who.merchant_id, _environment(who), url)
    return json_response(
        {
            "object": "webhook_endpoint",
            "environment": who.environment,
            "url": url,
            "status": "enabled",
        }
    )


@router.post("/api/v1/webhook_endpoint/rotate_secret")
async def rotate_secret(request: Request, who: Who) -> Response:
    """A new secret for the API key's environment, shown once; the one it replaces keeps
    signing for 24 hours (and any earlier one until its own overlap ends)."""
    box = SecretBox(request.app.state.settings.secrets_key.get_secret_value())
    secret, overlap_until = await webhook_endpoints.rotate_secret(
        request.app.state.pool,
        box,
        who.merchant_id,
        _environment(who),
        datetime.now(UTC),
    )
    return json_response(
        {
            "object": "webhook_secret",
            "environment": who.environment,
            "secret": secret,
            "previous_secret_expires_at": overlap_until.isoformat(),
        }
    )


def _environment(who: Principal) -> Environment:
    return "live" if who.environment == "live" else "test"
