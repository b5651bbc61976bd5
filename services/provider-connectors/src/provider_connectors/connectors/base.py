"""The one interface every provider implements, and the errors the engine understands.

A connector speaks its PSP's protocol and maps the answers to our vocabulary
(`ProviderResult`); it never touches the database or the broker. The engine persists,
dedups and publishes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from provider_connectors.domain.model import (
    Attempt,
    CallbackEvent,
    ProviderResult,
    RefundAttempt,
    RefundResult,
)

Clock = Callable[[], datetime]


class ConnectorError(Exception):
    """Base of the errors a connector raises on purpose."""


class FlowNotSupported(ConnectorError):
    """The PSP has no such flow (e.g. OTP confirmation, cancellation)."""


class ProviderUnavailable(ConnectorError):
    """Timeouts, connection errors or 5xx after in-call retries: the outcome is unknown.

    Never a failed payment by itself: the engine keeps the attempt and asks again later.
    """


class ProviderMisconfigured(ProviderUnavailable):
    """The PSP refuses us for a configuration reason (wrong base URL, product not
    provisioned, bad credentials): not an unknown outcome of a request it never received.

    The engine retries it like an outage, then fails a refund that never reached the PSP
    with a clear reason rather than leaving it pending forever.
    """


class AttemptNotFound(ConnectorError):
    """The PSP does not know the attempt (a request that never reached it)."""


class InvalidSignature(ConnectorError):
    """A callback whose signature does not verify: refused with 401, body not logged."""


class Connector(Protocol):
    """One PSP. `initiate` receives the attempt already persisted with `prepare`'s keys."""

    name: str

    def prepare(self, attempt: Attempt) -> dict[str, Any]:
        """Idempotency keys and references to persist before the first call."""
        ...

    async def initiate(self, attempt: Attempt) -> ProviderResult: ...

    async def submit_otp(self, attempt: Attempt, otp: str) -> ProviderResult: ...

    async def cancel(self, attempt: Attempt) -> ProviderResult: ...

    async def refund(self, attempt: Attempt, refund: RefundAttempt) -> RefundResult: ...

    async def fetch_status(self, attempt: Attempt) -> ProviderResult: ...

    async def fetch_refund_status(
        self, attempt: Attempt, refund: RefundAttempt
    ) -> RefundResult: ...

    def parse_callback(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> CallbackEvent:
        """Verify the signature first (raise `InvalidSignature`), then parse. `query` is
        the callback URL's query string (for PSPs that sign the URL, not the body)."""
        ...

    async def aclose(self) -> None: ...
