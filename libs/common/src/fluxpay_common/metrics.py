"""Prometheus metrics of every process, served on `/metrics` beside the health routes.

Every metric is declared here, once, so the dashboard (`deploy/grafana/`) and the alert
rules (`deploy/prometheus/`) can be checked against the names the code exports
(`EXPORTED_NAMES`). Labels take values from small closed sets only (queue names, provider
names, route templates, statuses), never ids or raw paths, so the series stay bounded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.responses import Response

# Seconds: from a fast RPC to a PSP that answers at its timeout.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Seconds an event waits before the merchant has it: retries run for hours.
_LAG_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)

PAYMENTS_CREATED = Counter(
    "fluxpay_payments_created_total",
    "Payments created, by routed provider ('none' until chosen) and environment.",
    ["provider", "environment"],
)
PAYMENTS_FINISHED = Counter(
    "fluxpay_payments_finished_total",
    "Payments reaching a final status, by that status, provider and environment.",
    ["status", "provider", "environment"],
)
PSP_CALL_SECONDS = Histogram(
    "fluxpay_psp_call_seconds",
    "Calls from a connector to its PSP (with in-call retries), by flow and outcome.",
    ["provider", "flow", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
HANDLER_SECONDS = Histogram(
    "fluxpay_handler_seconds",
    "Time of one handler call (transient retries included): one message, or one batch on a"
    " batch consumer, by queue.",
    ["queue"],
    buckets=_LATENCY_BUCKETS,
)
HANDLER_FAILURES = Counter(
    "fluxpay_handler_failures_total",
    "Messages whose handler failed (nacked for redelivery or rejected), by queue.",
    ["queue"],
)
DEAD_LETTERED = Counter(
    "fluxpay_messages_dead_lettered_total",
    "Messages sent to their queue's DLQ by this process, by queue and reason.",
    ["queue", "reason"],
)
OUTBOX_BACKLOG = Gauge(
    "fluxpay_outbox_backlog",
    "Outbox rows not yet published, by service (sampled by the relay).",
    ["service"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "fluxpay_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox row (0 when empty), by service.",
    ["service"],
)
WEBHOOK_ATTEMPTS = Counter(
    "fluxpay_webhook_attempts_total",
    "Webhook POSTs to merchants, by outcome (delivered, retry, failed, refused).",
    ["outcome"],
)
WEBHOOK_DELIVERY_LAG = Histogram(
    "fluxpay_webhook_delivery_lag_seconds",
    "From an event's creation to its successful delivery to the merchant.",
    buckets=_LAG_BUCKETS,
)
IDEMPOTENCY_REPLAYS = Counter(
    "fluxpay_idempotency_replays_total",
    "Requests answered from a stored answer (same Idempotency-Key), by route template.",
    ["route"],
)
HTTP_REQUESTS = Counter(
    "fluxpay_http_requests_total",
    "Gateway HTTP requests, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "fluxpay_http_request_seconds",
    "Gateway HTTP request duration, by method and route template.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
PROVIDER_REVIEW_QUEUE = Gauge(
    "fluxpay_provider_review_queue",
    "Provider attempts waiting for an operator's review, by provider.",
    ["provider"],
)

_ALL = (
    PAYMENTS_CREATED,
    PAYMENTS_FINISHED,
    PSP_CALL_SECONDS,
    HANDLER_SECONDS,
    HANDLER_FAILURES,
    DEAD_LETTERED,
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DELIVERY_LAG,
    IDEMPOTENCY_REPLAYS,
    HTTP_REQUESTS,
    HTTP_SECONDS,
    PROVIDER_REVIEW_QUEUE,
)
FINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})


def _sample_names(name: str, kind: str) -> tuple[str, ...]:
    if kind == "counter":
        return (f"{name}_total",)
    if kind == "histogram":
        return (f"{name}_bucket", f"{name}_count", f"{name}_sum")
    return (name,)


# The sample names Prometheus stores (a counter `x_total`, a histogram `x_bucket`...).
EXPORTED_NAMES: frozenset[str] = frozenset(
    sample
    for metric in _ALL
    for family in metric.describe()
    for sample in _sample_names(family.name, family.type)
)


def payment_announced(event_type: str, provider: str | None, environment: str) -> None:
    """Count a payment event the orchestrator announces (created, or a final status)."""
    status = event_type.rsplit(".", 1)[-1]
    if status == "created":
        PAYMENTS_CREATED.labels(provider or "none", environment).inc()
    elif status in FINAL_STATUSES:
        PAYMENTS_FINISHED.labels(status, provider or "none", environment).inc()


@contextmanager
def timed(histogram: Histogram, **labels: str) -> Iterator[dict[str, str]]:
    """Observe the block's duration; the block may set more labels (an outcome) in the
    dict it receives."""
    extra: dict[str, str] = {}
    started = time.perf_counter()
    try:
        yield extra
    finally:
        histogram.labels(**labels, **extra).observe(time.perf_counter() - started)


def metrics_router() -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router
