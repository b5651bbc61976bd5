"""The gateway's HTTP requests measured and traced: each opens (or continues) the trace of
everything it causes, and is counted by route template, never by raw path (ids would make
one series per payment)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from starlette.responses import Response

from fluxpay_common.metrics import HTTP_REQUESTS, HTTP_SECONDS, IDEMPOTENCY_REPLAYS
from fluxpay_common.tracing import tracer

UNMATCHED = "unmatched"


def route_template(request: Request) -> str:
    """`/api/v1/collect/payments/{reference_or_id}`, or `unmatched` (a 404 probe, a typo)."""
    route = request.scope.get("route")
    return str(getattr(route, "path", UNMATCHED))


def count_replay(request: Request) -> None:
    IDEMPOTENCY_REPLAYS.labels(route_template(request)).inc()


async def observe(request: Request, call_next: Any) -> Response:
    """HTTP middleware: a server span per request, and its count and duration."""
    token = otel_context.attach(propagate.extract(dict(request.headers)))
    started = time.perf_counter()
    status = 500
    try:
        with tracer().start_as_current_span(
            f"{request.method} request", kind=trace.SpanKind.SERVER
        ) as span:
            try:
                response: Response = await call_next(request)
                status = response.status_code
                return response
            finally:
                route = route_template(request)
                span.update_name(f"{request.method} {route}")
                span.set_attribute("http.request.method", request.method)
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
                HTTP_SECONDS.labels(request.method, route).observe(time.perf_counter() - started)
    finally:
        otel_context.detach(token)
