"""Every call to a PSP measured and traced the same way, whatever the connector.

Wraps a `Connector`: each flow (initiate, submit_otp, cancel, refund, fetch_status,
fetch_refund_status) is timed into `fluxpay_psp_call_seconds{provider, flow, outcome}` and
runs in a client span of the payment's trace. Callback parsing is passed through untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fluxpay_common.metrics import PSP_CALL_SECONDS, timed
from fluxpay_common.tracing import client_span
from provider_connectors.connectors.base import (
    AttemptNotFound,
    Connector,
    FlowNotSupported,
    ProviderUnavailable,
)

FLOWS = ("initiate", "submit_otp", "cancel", "refund", "fetch_status", "fetch_refund_status")


def outcome_of(error: BaseException | None) -> str:
    """A small closed set: `ok`, or what kind of failure the engine saw."""
    match error:
        case None:
            return "ok"
        case ProviderUnavailable():
            return "unavailable"
        case AttemptNotFound():
            return "not_found"
        case FlowNotSupported():
            return "not_supported"
        case _:
            return "error"


class InstrumentedConnector:
    def __init__(self, inner: Connector) -> None:
        self._inner = inner
        self.name = inner.name

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._inner, attribute)
        if attribute in FLOWS:
            return self._measured(attribute, value)
        return value

    def _measured(
        self, flow: str, call: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        provider = self.name

        async def measured(*args: Any, **kwargs: Any) -> Any:
            with (
                client_span(f"psp {provider} {flow}", provider=provider, flow=flow),
                timed(PSP_CALL_SECONDS, provider=provider, flow=flow) as labels,
            ):
                labels["outcome"] = "error"
                try:
                    result = await call(*args, **kwargs)
                except BaseException as exc:
                    labels["outcome"] = outcome_of(exc)
                    raise
                labels["outcome"] = "ok"
                return result

        return measured
