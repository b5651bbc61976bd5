"""Admission control for payment creation: past what the platform carries, refuse at once.

An overloaded platform used to queue every create: at 60/s offered on two cores the
merchant's create took 11 s at p50 and 44 s at p99, which is an outage for a merchant. Each
gateway process now bounds the creates it has in flight towards the orchestrator. The bound
adapts to how fast creates are answered (AIMD, as TCP and Netflix's concurrency-limits do):
a create answered slower than the target latency shrinks it by a tenth, one answered in time
grows it by one, between a floor and a ceiling (so a rare slow answer at light load costs
nothing: the next ones in time restore the bound). By Little's law a
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
    in_flight: int = 0
    limit: float = field(init=False)

    def __post_init__(self) -> None:
        self.floor = max(1, min(self.floor, self.ceiling))
        self.limit = float(self.ceiling)

    def try_enter(self) -> bool:
        if self.in_flight >= int(self.limit):
            return False
        self.in_flight += 1
        return True

    def leave(self, seconds: float) -> None:
        """One create left after `seconds` (a timeout is a slow answer like any other)."""
        self.in_flight -= 1
        if seconds > self.target_seconds:
            self.limit = max(float(self.floor), self.limit * 0.9)
        else:
            self.limit = min(float(self.ceiling), self.limit + 1)


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
        if not self.limit.try_enter():
            await self._refusal(scope, receive, send)
            return
        started = time.monotonic()
        placed = True

        def leave() -> None:
            nonlocal placed
            if placed:
                placed = False
                self.limit.leave(time.monotonic() - started)

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
