"""The gateway's HTTP requests measured and traced: each opens (or continues) the trace of
everything it causes, and is counted by route template, never by raw path (ids would make
one series per payment)."""

from __future__ import annotations

import time

from fastapi import Request
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fluxpay_common.metrics import HTTP_REQUESTS, HTTP_SECONDS, IDEMPOTENCY_REPLAYS
from fluxpay_common.tracing import tracer

UNMATCHED = "unmatched"


def route_template(request: Request) -> str:
    """`/api/v1/collect/payments/{reference_or_id}`, or `unmatched` (a 404 probe, a typo)."""
    return _template(request.scope)


def _template(scope: Scope) -> str:
    return str(getattr(scope.get("route"), "path", UNMATCHED))


def count_replay(request: Request) -> None:
    IDEMPOTENCY_REPLAYS.labels(route_template(request)).inc()


def _trace_carrier(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name, the first of repeated ones (as Headers)."""
    carrier: dict[str, str] = {}
    for name, value in scope["headers"]:
        carrier.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return carrier


class ObservedRequests:
    """ASGI middleware: a server span per request, and its count and duration (to the
    answer's status line; an error no layer answered counts as a 500)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = otel_context.attach(propagate.extract(_trace_carrier(scope)))
        started = time.perf_counter()
        status = 500  # an error no layer answered
        seconds: float | None = None  # to the status line

        async def answer(message: Message) -> None:
            nonlocal status, seconds
            if message["type"] == "http.response.start":
                status, seconds = message["status"], time.perf_counter() - started
            await send(message)

        method = scope["method"]
        try:
            with tracer().start_as_current_span(
                f"{method} request", kind=trace.SpanKind.SERVER
            ) as span:
                try:
                    await self.app(scope, receive, answer)
                finally:
                    route = _template(scope)
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.request.method", method)
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status)
                    HTTP_REQUESTS.labels(method, route, str(status)).inc()
                    elapsed = time.perf_counter() - started if seconds is None else seconds
                    HTTP_SECONDS.labels(method, route).observe(elapsed)
        finally:
            otel_context.detach(token)
