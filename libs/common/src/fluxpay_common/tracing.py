"""OpenTelemetry set up once per process; trace context travels in message headers."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, DEFAULT_ON

_configured = False


def configure_tracing(service: str, exporter: str = "none") -> None:
    global _configured
    if _configured:
        return
    # With no exporter, spans are not recorded (recording them only to drop them cost the
    # gateway a tenth of its CPU), but trace ids are still made and carried in messages.
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"fluxpay-{service}"}),
        sampler=ALWAYS_OFF if exporter == "none" else DEFAULT_ON,
    )
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "otlp":
        # OTLP over HTTP/protobuf; where to is OTEL_EXPORTER_OTLP_ENDPOINT (or
        # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), default http://localhost:4318.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True


def flush_spans(timeout_millis: int = 5000) -> None:
    """Export what is buffered (at a graceful stop; a killed process loses its last batch)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush(timeout_millis)


@functools.cache
def tracer() -> trace.Tracer:
    # One tracer per process: get_tracer builds a new one on every call (3% of the webhook
    # dispatcher's CPU, a span per POST). Before configure_tracing it is the API's proxy,
    # which follows the provider once set (set once per process).
    return trace.get_tracer("fluxpay")


def inject_headers() -> dict[str, str]:
    """W3C trace context of the current span, to store beside an outgoing message."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def span_from_headers(name: str, headers: Mapping[str, Any] | None, **attrs: Any) -> Iterator[Any]:
    """Continue the trace a message carries (its `traceparent` header) in a consumer span."""
    carrier = {k: str(v) for k, v in (headers or {}).items()}
    token = otel_context.attach(propagate.extract(carrier))
    try:
        with tracer().start_as_current_span(name, kind=trace.SpanKind.CONSUMER) as span:
            for key, value in attrs.items():
                if value is not None:
                    span.set_attribute(key, str(value))
            yield span
    finally:
        otel_context.detach(token)


@contextmanager
def client_span(name: str, **attrs: Any) -> Iterator[Any]:
    """A call out of the process (a PSP, a merchant's webhook endpoint) in the current trace."""
    with tracer().start_as_current_span(name, kind=trace.SpanKind.CLIENT) as span:
        for key, value in attrs.items():
            if value is not None:
                span.set_attribute(key, str(value))
        yield span


def current_traceparent() -> str | None:
    """The current span's W3C `traceparent`, to store with work that continues later (a
    payment, a provider attempt, a webhook delivery); None outside any trace."""
    return inject_headers().get("traceparent")


@contextmanager
def continued(
    name: str,
    traceparent: str | None,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    **attrs: Any,
) -> Iterator[Any]:
    """Background work (poller, expiry sweep, retries) as a span of the trace it continues."""
    carrier = {"traceparent": traceparent} if traceparent else {}
    token = otel_context.attach(propagate.extract(carrier))
    try:
        with tracer().start_as_current_span(name, kind=kind) as span:
            for key, value in attrs.items():
                if value is not None:
                    span.set_attribute(key, str(value))
            yield span
    finally:
        otel_context.detach(token)


@contextmanager
def within_trace_of(name: str, traceparent: str | None, **attrs: Any) -> Iterator[Any]:
    """Inside a span already (a consumer's), stay in it; outside any (a poller, a PSP
    callback), continue the stored trace."""
    current = trace.get_current_span()
    if current.get_span_context().is_valid:
        yield current
        return
    with continued(name, traceparent, **attrs) as span:
        yield span


def add_trace_ids(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: every log line inside a span names its trace (and span)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event
