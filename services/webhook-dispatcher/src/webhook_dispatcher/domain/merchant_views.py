"""What a merchant reads about its events, deliveries and endpoint, in the API's shape.

Pure: rows come in as plain dataclasses, JSON-ready dicts go out. The dispatcher's internal
delivery statuses are mapped here, once, to the five a merchant sees.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, assert_never

import orjson

from webhook_dispatcher.domain.delivery import DeliveryStatus

PublicStatus = Literal["pending", "delivered", "failed", "dead", "no_endpoint"]


def public_status(status: DeliveryStatus) -> PublicStatus:
    match status:
        case "pending":
            return "pending"  # due, retrying on the schedule, or awaiting the endpoint record
        case "succeeded":
            return "delivered"
        case "endpoint_disabled":
            return "failed"  # never sent: the merchant's endpoint was disabled
        case "dead":
            return "dead"  # retries exhausted, 410 Gone, or no signing secret
        case "no_endpoint":
            return "no_endpoint"
        case _:
            assert_never(status)


@dataclass(frozen=True)
class DeliveryState:
    id: uuid.UUID
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True)
class AttemptRecord:
    number: int
    started_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    url: str | None
    response_excerpt: str | None


@dataclass(frozen=True)
class EventSummary:
    id: str
    type: str
    environment: str
    occurred_at: datetime
    test: bool
    delivery: DeliveryState | None  # the latest one (a replay is a newer delivery)


@dataclass(frozen=True)
class EndpointStatus:
    environment: str
    url: str | None
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None
    secret_overlap_until: datetime | None


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def delivery_summary(delivery: DeliveryState | None) -> dict[str, Any] | None:
    if delivery is None:
        return None
    return {
        "id": str(delivery.id),
        "status": public_status(delivery.status),
        "attempts": delivery.attempt_count,
        "next_attempt_at": iso(delivery.next_attempt_at),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
    }


def event_summary(event: EventSummary) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": event.id,
        "object": "event",
        "type": event.type,
        # The same second as the webhook body's `created`.
        "created": int(event.occurred_at.timestamp()),
        "environment": event.environment,
        "delivery": delivery_summary(event.delivery),
    }
    if event.test:
        body["test"] = True
    return body


def event_list(events: list[EventSummary], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": [event_summary(e) for e in events], "has_more": has_more}


def event_detail(
    stored_body: bytes, deliveries: list[tuple[DeliveryState, list[AttemptRecord]]]
) -> dict[str, Any]:
    """The event exactly as sent, plus its delivery log (deliveries newest first)."""
    body: dict[str, Any] = orjson.loads(stored_body)
    body["delivery"] = delivery_summary(deliveries[0][0] if deliveries else None)
    body["deliveries"] = [delivery_log(d, attempts) for d, attempts in deliveries]
    return body


def delivery_log(delivery: DeliveryState, attempts: list[AttemptRecord]) -> dict[str, Any]:
    return {
        "id": str(delivery.id),
        "status": public_status(delivery.status),
        "created_at": iso(delivery.created_at),
        "completed_at": iso(delivery.completed_at),
        "next_attempt_at": iso(delivery.next_attempt_at),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "attempts": [attempt_log(a) for a in attempts],
    }


def attempt_log(attempt: AttemptRecord) -> dict[str, Any]:
    return {
        "attempt": attempt.number,
        "at": iso(attempt.started_at),
        "status_code": attempt.status_code,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
        "url": attempt.url,
        "response_excerpt": attempt.response_excerpt,
    }


def replay_answer(event_id: str, delivery: DeliveryState) -> dict[str, Any]:
    return {
        "object": "event_replay",
        "event_id": event_id,
        "delivery_id": str(delivery.id),
        "status": public_status(delivery.status),
    }


def endpoint_view(endpoint: EndpointStatus, now: datetime) -> dict[str, Any]:
    """The overlap (until the last previous secret stops signing) is shown only while it
    lasts."""
    overlap = endpoint.secret_overlap_until
    return {
        "object": "webhook_endpoint",
        "environment": endpoint.environment,
        "url": endpoint.url,
        "status": "disabled" if endpoint.disabled_at is not None else "enabled",
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": iso(endpoint.disabled_at),
        "failing_since": iso(endpoint.failing_since),
        "secret_rotation_overlap_until": iso(overlap) if overlap and overlap > now else None,
    }
