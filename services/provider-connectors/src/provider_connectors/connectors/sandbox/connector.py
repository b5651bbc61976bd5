"""The sandbox provider: no outside PSP, the decision table of `rules` on a simulated clock."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from fluxpay_common.ids import utcnow
from provider_connectors.connectors.base import AttemptNotFound, Clock, FlowNotSupported
from provider_connectors.connectors.sandbox import rules
from provider_connectors.domain.model import (
    Attempt,
    CallbackEvent,
    ProviderResult,
    RefundAttempt,
    RefundResult,
)


class SandboxConnector:
    name = "sandbox"

    def __init__(self, delay_seconds: float, clock: Clock = utcnow) -> None:
        self._delay = timedelta(seconds=delay_seconds)
        self._clock = clock

    def prepare(self, attempt: Attempt) -> dict[str, Any]:
        return {}

    async def initiate(self, attempt: Attempt) -> ProviderResult:
        return rules.initiate(attempt, self._clock(), self._delay)

    async def submit_otp(self, attempt: Attempt, otp: str) -> ProviderResult:
        return rules.submit_otp(attempt, otp, self._clock(), self._delay)

    async def cancel(self, attempt: Attempt) -> ProviderResult:
        return rules.cancel(attempt, self._clock(), self._delay)

    async def refund(self, attempt: Attempt, refund: RefundAttempt) -> RefundResult:
        return rules.refund(attempt, self._clock(), self._delay)

    async def fetch_status(self, attempt: Attempt) -> ProviderResult:
        if attempt.status == "pending":
            # The simulated PSP keeps no state of its own: an attempt never initiated is unknown.
            raise AttemptNotFound(str(attempt.payment_id))
        return rules.fetch_status(attempt, self._clock())

    async def fetch_refund_status(self, attempt: Attempt, refund: RefundAttempt) -> RefundResult:
        if "outcome_at" not in refund.data:
            raise AttemptNotFound(str(refund.refund_id))
        return rules.fetch_refund_status(attempt, refund, self._clock())

    def parse_callback(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> CallbackEvent:
        raise FlowNotSupported("the sandbox sends no callbacks; outcomes come from polling")

    async def aclose(self) -> None:
        return None
