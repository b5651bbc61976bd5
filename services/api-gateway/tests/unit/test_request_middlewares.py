"""The gateway's middleware stack as built by `create_app` (no lifespan, so nothing opens):
refusal until started, correlation id, security headers, metrics by route template, and
the ApiError shape on every refusal and on an unexpected error."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI, Request
from prometheus_client import REGISTRY

from api_gateway.app import create_app
from api_gateway.config import Settings

DOCS = "https://docs.example/errors"
PAYMENT = "/api/v1/collect/payments/{reference_or_id}"


async def _seen(request: Request) -> dict[str, Any]:
    return {
        "correlation_id": request.state.correlation_id,
        "logged_with": structlog.contextvars.get_contextvars().get("correlation_id"),
    }


async def _fails() -> None:
    raise RuntimeError("a bug")


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    asgi = create_app(Settings(doc_base_url=DOCS))
    app: FastAPI = asgi._application
    app.state.started = False
    app.add_api_route("/test/seen", _seen)
    app.add_api_route("/test/fails", _fails)
    transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield app, client


def counted(method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("fluxpay_http_requests_total", labels) or 0.0


def timed(method: str, route: str) -> float:
    labels = {"method": method, "route": route}
    return REGISTRY.get_sample_value("fluxpay_http_request_seconds_count", labels) or 0.0


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["doc_url"] == f"{DOCS}#{code}"
    assert response.headers["content-type"] == "application/json"


async def test_before_start_only_probes_are_answered(gateway) -> None:
    app, client = gateway
    before = counted("POST", "unmatched", 503)
    request_id = str(uuid.uuid4())
    refused = await client.post(
        "/api/v1/collect/payments", json={}, headers={"X-Request-Id": request_id}
    )
    assert_error(refused, 503, "service_unavailable")
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["x-request-id"] == request_id
    assert refused.headers["x-content-type-options"] == "nosniff"
    assert refused.headers["referrer-policy"] == "no-referrer"
    assert counted("POST", "unmatched", 503) == before + 1

    alive = await client.get("/healthz")
    assert alive.status_code == 200
    assert uuid.UUID(alive.headers["x-request-id"])

    app.state.started = True
    assert (await client.get("/test/seen")).status_code == 200


async def test_the_correlation_id_reaches_the_route_and_its_logs(gateway) -> None:
    app, client = gateway
    app.state.started = True
    given = await client.get("/test/seen", headers={"X-Request-Id": "order-42"})
    assert given.json() == {"correlation_id": "order-42", "logged_with": "order-42"}
    assert given.headers["x-request-id"] == "order-42"
    assert given.headers.get_list("x-request-id") == ["order-42"]

    long = await client.get("/test/seen", headers={"X-Request-Id": "x" * 300})
    assert long.json()["correlation_id"] == "x" * 100
    assert long.headers["x-request-id"] == "x" * 100

    made = await client.get("/test/seen")
    assert made.json()["correlation_id"] == made.headers["x-request-id"]
    assert uuid.UUID(made.headers["x-request-id"])
    assert structlog.contextvars.get_contextvars().get("correlation_id") is None


async def test_refusals_keep_the_error_shape_and_are_counted_by_route_template(gateway) -> None:
    app, client = gateway
    app.state.started = True
    before = counted("GET", PAYMENT, 401), timed("GET", PAYMENT)
    unauthenticated = await client.get("/api/v1/collect/payments/ref-1")
    assert_error(unauthenticated, 401, "api_key_missing")
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    assert uuid.UUID(unauthenticated.headers["x-request-id"])
    assert (counted("GET", PAYMENT, 401), timed("GET", PAYMENT)) == (
        before[0] + 1,
        before[1] + 1,
    )

    missing = await client.get("/no/such/endpoint")
    assert_error(missing, 404, "resource_not_found")
    assert missing.headers["referrer-policy"] == "no-referrer"

    edge = await client.post("/api/v1/collect/payments", json={"reference": "a\u0000b"})
    assert_error(edge, 400, "invalid_characters")
    assert edge.json()["error"]["param"] == "reference"
    assert uuid.UUID(edge.headers["x-request-id"])


async def test_an_unexpected_error_is_a_500_in_the_error_shape_and_counted(gateway) -> None:
    app, client = gateway
    app.state.started = True
    before = counted("GET", "/test/fails", 500)
    failed = await client.get("/test/fails")
    assert_error(failed, 500, "internal_error")
    assert failed.headers["x-content-type-options"] == "nosniff"
    assert counted("GET", "/test/fails", 500) == before + 1
