"""/api/v1/api_keys: a merchant manages its own keys (a `full` key is required; the route
class `management` says so). Every key lives in the calling key's environment: a test key
never creates, sees or revokes a live key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from starlette.responses import Response

from api_gateway import api_keys
from api_gateway.errors import ApiError
from api_gateway.roles import Role
from api_gateway.routes.collect import Who, reject_unknown_query
from api_gateway.rpc import json_response

router = APIRouter(prefix="/api/v1/api_keys", dependencies=[Depends(reject_unknown_query)])
# Rotation grace bounds: at once (a leaked key) up to a week.
MAX_GRACE_SECONDS = 7 * 86_400
MAX_LIFETIME = timedelta(days=5 * 366)


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]
    role: Role = Role.FULL
    expires_at: datetime = None  # type: ignore[assignment]

    @field_validator("role", mode="before")
    @classmethod
    def _role(cls, value: Any) -> Any:
        return Role(value) if isinstance(value, str) and value in set(Role) else value

    @field_validator("expires_at", mode="before")
    @classmethod
    def _iso(cls, value: Any) -> Any:
        return datetime.fromisoformat(value) if isinstance(value, str) else value


class ApiKeyRotate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    # Seconds the old key keeps working; the default is the gateway's setting (24 h).
    expires_in: Annotated[int, Field(ge=0, le=MAX_GRACE_SECONDS)] = None  # type: ignore[assignment]


def _future(expires_at: datetime | None) -> datetime | None:
    if expires_at is None:
        return None
    when = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
    now = datetime.now(UTC)
    if not now < when <= now + MAX_LIFETIME:
        raise ApiError(
            400,
            "parameter_invalid",
            "'expires_at' must be in the future, at most five years ahead.",
            "expires_at",
        )
    return when


@router.post("", status_code=201)
async def create_key(request: Request, body: ApiKeyCreate, who: Who) -> Response:
    issued = await api_keys.create(
        request.app.state.pool,
        who.merchant_id,
        who.environment,
        body.name,
        body.role,
        _future(body.expires_at),
    )
    return json_response(api_keys.key_body(issued.row, issued.secret), 201)


@router.get("")
async def list_keys(
    request: Request,
    who: Who,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    rows = await api_keys.page(
        request.app.state.pool, who.merchant_id, who.environment, limit, starting_after
    )
    return json_response(
        {
            "object": "list",
            "data": [api_keys.key_body(r) for r in rows[:limit]],
            "has_more": len(rows) > limit,
        }
    )


@router.delete("/{key_id}")
async def revoke_key(request: Request, key_id: str, who: Who) -> Response:
    row = await api_keys.revoke(request.app.state.pool, who.merchant_id, who.environment, key_id)
    return json_response(api_keys.key_body(row))


@router.post("/{key_id}/rotate")
async def rotate_key(
    request: Request,
    key_id: str,
    who: Who,
    body: Annotated[ApiKeyRotate | None, Body()] = None,
) -> Response:
    """A new key, shown once; the old one works for `expires_in` seconds more."""
    grace = request.app.state.settings.api_key_rotation_grace_seconds
    if body is not None and body.expires_in is not None:
        grace = body.expires_in
    new, old = await api_keys.rotate(
        request.app.state.pool, who.merchant_id, who.environment, key_id, grace
    )
    return json_response(
        {**api_keys.key_body(new.row, new.secret), "previous_key": api_keys.key_body(old)}
    )
