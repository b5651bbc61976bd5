"""Admission control for payment creation: past what the platform carries, refuse at once.

An overloaded platform used to queue every create: at 60/s offered on two cores the
merchant's create took 11 s at p50 and 44 s at p99, which is an outage for a merchant. Each
gateway process now bounds the creates it has in flight towards the orchestrator. The bound
adapts to how fast creates are answered (AIMD, as TCP and Netflix's concurrency-limits do):
a create answered slower than the target latency shrinks it by a tenth, one answered in time
grows it by one, between a floor and a ceiling (so a rare slow answer at light load costs
nothing: the next ones in time restore the bound). A gateway that had nothing in flight for
`recovery_seconds` has nothing of its own queued behind it: its next create finds the bound
back at the ceiling (else a burst after a quiet spell would be refused for a past overload
that no answer was left to disprove). By Little's law a
bound of L in flight answered at X/s keeps the wait near L/X, so the bound settles where
creates are answered within the target. A create beyond the bound is refused before
anything is stored or sent: `503 service_overloaded` with `Retry-After`, the merchant
retries (with the same Idempotency-Key, nothing can be created twice).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_gateway.errors import ApiError, error_response


@dataclass
class AdmissionLimit:
    """How many creates this process lets in flight; pure, the clock is the caller's."""

    ceiling: int
    floor: int = 4
    target_seconds: float = 0.1
    recovery_seconds: float = 1.0
    in_flight: int = 0
    limit: float = field(init=False)
    idle_since: float | None = None

    def __post_init__(self) -> None:
        self.floor = max(1, min(self.floor, self.ceiling))
        self.limit = float(self.ceiling)

    def try_enter(self, now: float) -> bool:
        if self.idle_since is not None and now - self.idle_since >= self.recovery_seconds:
            self.limit = float(self.ceiling)
        if self.in_flight >= int(self.limit):
            return False
        self.in_flight += 1
        self.idle_since = None
        return True

    def leave(self, seconds: float, now: float) -> None:
        """One create left after `seconds` (a timeout is a slow answer like any other)."""
        self.in_flight -= 1
        if seconds > self.target_seconds:
            self.limit = max(float(self.floor), self.limit * 0.9)
        else:
            self.limit = min(float(self.ceiling), self.limit + 1)
        if self.in_flight == 0:
            self.idle_since = now


def overloaded(retry_after_seconds: int) -> ApiError:
    return ApiError(
        503,
        "service_overloaded",
        "FluxPay is taking more payments than it can answer quickly; retry after the"
        " Retry-After delay (with the same Idempotency-Key a retry never creates a second"
        " payment). Nothing was created.",
        headers={"Retry-After": str(retry_after_seconds)},
    )


class CreateAdmission:
    """ASGI middleware, outermost: `POST /api/v1/collect/payments` holds a place among the
    creates in flight for its whole request, or is refused before anything else runs (no
    routing, no body parsing, no authentication: an overloaded gateway refuses cheaply)."""

    PATH = "/api/v1/collect/payments"

    def __init__(
        self, app: ASGIApp, limit: AdmissionLimit, retry_after_seconds: int, doc_base_url: str
    ) -> None:
        self.app = app
        self.limit = limit
        self._refusal = error_response(overloaded(retry_after_seconds), doc_base_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_create(scope):
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        if not self.limit.try_enter(started):
            await self._refusal(scope, receive, send)
            return
        placed = True

        def leave() -> None:
            nonlocal placed
            if placed:
                placed = False
                now = time.monotonic()
                self.limit.leave(now - started, now)

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                leave()  # before the merchant can see the answer and send the next create
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            leave()


def _is_create(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope["method"] == "POST"
        and scope["path"].rstrip("/") == CreateAdmission.PATH
    )
