import uuid
from datetime import UTC, datetime, timedelta
from typing import get_args

import orjson
import pytest

from webhook_dispatcher.domain.delivery import DeliveryStatus, Endpoint, SigningSecret
from webhook_dispatcher.domain.merchant_views import (
    AttemptRecord,
    DeliveryState,
    EndpointStatus,
    EventSummary,
    endpoint_view,
    event_detail,
    event_list,
    public_status,
)
from webhook_dispatcher.domain.replay import REPLAYABLE, replay_refusal

NOW = datetime(2026, 6, 1, 12, 0, 5, 900000, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _delivery(status: DeliveryStatus = "pending", **changes: object) -> DeliveryState:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "status": status,
        "attempt_count": 2,
        "next_attempt_at": NOW + HOUR,
        "last_status_code": 503,
        "last_error": "HTTP 503",
        "created_at": NOW,
        "completed_at": None,
    }
    return DeliveryState(**{**values, **changes})  # type: ignore[arg-type]


def _summary(delivery: DeliveryState | None, test: bool = False) -> EventSummary:
    return EventSummary("evt-1", "collect.payment.completed", "live", NOW, test, delivery)


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        ("pending", "pending"),
        ("succeeded", "delivered"),
        ("endpoint_disabled", "failed"),
        ("dead", "dead"),
        ("no_endpoint", "no_endpoint"),
    ],
)
def test_every_internal_status_maps_to_one_merchant_status(status, shown) -> None:
    assert public_status(status) == shown


def test_the_mapping_covers_every_internal_status() -> None:
    shown = {public_status(s) for s in get_args(DeliveryStatus)}
    assert shown == {"pending", "delivered", "failed", "dead", "no_endpoint"}


def test_replayable_deliveries_are_exactly_those_shown_failed_or_dead() -> None:
    assert {public_status(s) for s in REPLAYABLE} == {"failed", "dead"}


def test_event_summary_shows_the_latest_delivery_and_the_webhook_created_second() -> None:
    delivery = _delivery()
    body = event_list([_summary(delivery)], has_more=True)
    assert body == {
        "object": "list",
        "data": [
            {
                "id": "evt-1",
                "object": "event",
                "type": "collect.payment.completed",
                "created": 1780315205,
                "environment": "live",
                "delivery": {
                    "id": str(delivery.id),
                    "status": "pending",
                    "attempts": 2,
                    "next_attempt_at": (NOW + HOUR).isoformat(),
                    "last_status_code": 503,
                    "last_error": "HTTP 503",
                },
            }
        ],
        "has_more": True,
    }


def test_only_a_test_event_carries_the_test_marker() -> None:
    [plain] = event_list([_summary(_delivery())], False)["data"]
    [test] = event_list([_summary(_delivery(), test=True)], False)["data"]
    assert "test" not in plain and test["test"] is True


def test_event_detail_is_the_stored_body_plus_its_delivery_log() -> None:
    stored = orjson.dumps({"id": "evt-1", "object": "event", "data": {"object": {"amount": 3}}})
    replay = _delivery("succeeded", attempt_count=1, next_attempt_at=None, completed_at=NOW)
    first = _delivery("dead", next_attempt_at=None)
    attempt = AttemptRecord(1, NOW, 200, None, 42, "https://shop.example/hooks", "ok")
    detail = event_detail(stored, [(replay, [attempt]), (first, [])])

    assert detail["data"] == {"object": {"amount": 3}}
    assert detail["delivery"]["status"] == "delivered", "the newest delivery is the summary"
    assert [d["status"] for d in detail["deliveries"]] == ["delivered", "dead"]
    assert detail["deliveries"][0]["attempts"] == [
        {
            "attempt": 1,
            "at": NOW.isoformat(),
            "status_code": 200,
            "error": None,
            "duration_ms": 42,
            "url": "https://shop.example/hooks",
            "response_excerpt": "ok",
        }
    ]


def _endpoint(**changes: object) -> EndpointStatus:
    values: dict[str, object] = {
        "url": "https://shop.example/hooks",
        "disabled_at": None,
        "disabled_reason": None,
        "failing_since": None,
        "secret_overlap_until": None,
        "environment": "test",
    }
    return EndpointStatus(**{**values, **changes})  # type: ignore[arg-type]


def test_endpoint_shows_the_rotation_overlap_only_while_it_lasts() -> None:
    during = endpoint_view(_endpoint(secret_overlap_until=NOW + HOUR), NOW)
    after = endpoint_view(_endpoint(secret_overlap_until=NOW - HOUR), NOW)
    assert during["secret_rotation_overlap_until"] == (NOW + HOUR).isoformat()
    assert after["secret_rotation_overlap_until"] is None
    assert during["status"] == "enabled" and during["object"] == "webhook_endpoint"


def test_disabled_endpoint_says_when_and_why() -> None:
    view = endpoint_view(_endpoint(disabled_at=NOW, disabled_reason="410 Gone"), NOW)
    assert view["status"] == "disabled"
    assert view["disabled_at"] == NOW.isoformat() and view["disabled_reason"] == "410 Gone"


ENABLED = Endpoint(url="https://shop.example/hooks", secrets=(SigningSecret("s"),))


@pytest.mark.parametrize(
    ("callback_url", "endpoint", "refusal"),
    [
        (None, ENABLED, None),
        (None, None, "endpoint_not_found"),
        (None, Endpoint(url=None, secrets=(SigningSecret("s"),)), "endpoint_not_found"),
        (
            None,
            Endpoint(url="https://x.example", secrets=(SigningSecret("s"),), disabled_at=NOW),
            "endpoint_disabled",
        ),
        # A payment's own callback_url does not go through the merchant's endpoint.
        (
            "https://cb.example/1",
            Endpoint(url="https://x", secrets=(), disabled_at=NOW),
            None,
        ),
        ("https://cb.example/1", None, None),
    ],
)
def test_replay_is_refused_only_when_its_destination_cannot_take_it(
    callback_url, endpoint, refusal
) -> None:
    assert replay_refusal(callback_url, endpoint) == refusal
