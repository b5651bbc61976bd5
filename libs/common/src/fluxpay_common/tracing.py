"""OpenTelemetry set up once per process; trace context travels in message headers."""

from __future__ import annotations

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
    elif exporter == "otlp":  # pragma: no cover - needs an exporter package and a collector
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True


def tracer() -> trace.Tracer:
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
