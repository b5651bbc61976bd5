"""/api/v1/audit_log: the merchant reads who changed what, in its key's environment (and
merchant-wide entries such as its creation), newest first, filtered by action and time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from api_gateway.errors import ApiError
from api_gateway.routes.collect import Who, reject_unknown_query
from api_gateway.rpc import json_response

router = APIRouter(dependencies=[Depends(reject_unknown_query)])
PREFIX = "aud_"


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
        # In UTC now: year 1 with a positive offset is year 0, which nothing can store.
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ApiError(
            400, "parameter_invalid", f"'{name}' must be an ISO 8601 date-time.", name
        ) from None


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    digits = value.removeprefix(PREFIX)
    if not (value.startswith(PREFIX) and digits.isascii() and digits.isdigit()):
        raise ApiError(
            400,
            "invalid_starting_after",
            "'starting_after' is not an entry of this list.",
            "starting_after",
        )
    return min(int(digits), 2**63 - 1)


def entry_body(row: Any) -> dict[str, Any]:
    actor: dict[str, Any] = {"type": "admin"}
    if row["actor_key_id"] is not None:
        actor = {"type": "api_key", "api_key_id": str(row["actor_key_id"])}
    return {
        "object": "audit_entry",
        "id": f"{PREFIX}{row['id']}",
        "action": row["action"],
        "actor": actor,
        "environment": row["environment"],
        "request_id": row["request_id"],
        "details": row["details"],
        "created_at": row["at"].isoformat(),
    }


@router.get("/api/v1/audit_log")
async def list_audit_log(
    request: Request,
    who: Who,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[str | None, Query(max_length=100)] = None,
    action: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_.]+$")] = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    rows = await request.app.state.pool.fetch(
        "SELECT id, actor_key_id, action, environment, request_id, details, at FROM audit_log"
        " WHERE merchant_id = $1 AND (environment = $2 OR environment IS NULL)"
        " AND ($3::bigint IS NULL OR id < $3) AND ($4::text IS NULL OR action = $4)"
        " AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::timestamptz IS NULL OR at < $6)"
        " ORDER BY id DESC LIMIT $7",
        who.merchant_id,
        who.environment,
        _cursor(starting_after),
        action,
        _time(since, "since"),
        _time(until, "until"),
        limit + 1,
    )
    return json_response(
        {
            "object": "list",
            "data": [entry_body(r) for r in rows[:limit]],
            "has_more": len(rows) > limit,
        }
    )
