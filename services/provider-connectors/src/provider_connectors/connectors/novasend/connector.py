"""Novasend payin (seed 002): one method per flow; mapping lives in `transformers`.

- `POST /v1/payin/sessions`, HTTP Basic `api_key:api_client`, `X-Idempotency-Key` (a UUID
  persisted with the attempt before the first call, reused on every retry);
- `GET /v1/payin/{reference}` for the status (no more often than every 5 s);
- refunds are payouts to the paying wallet: `POST /v1/payout`, `GET /v1/payout/{reference}`;
- no OTP or cancel flow: the customer confirms in the wallet or through `paymentUrl`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from fluxpay_common.ids import utcnow
from provider_connectors.config import Settings
from provider_connectors.connectors.base import AttemptNotFound, Clock, FlowNotSupported
from provider_connectors.connectors.http import PspHttp, RetryPolicy, json_body
from provider_connectors.connectors.novasend import transformers, webhooks
from provider_connectors.connectors.polling import next_poll_at
from provider_connectors.domain.model import (
    Attempt,
    CallbackEvent,
    ProviderResult,
    RefundAttempt,
    RefundResult,
)


class NovasendConnector:
    name = "novasend"

    def __init__(self, settings: Settings, clock: Clock = utcnow, transport: Any = None) -> None:
        self._http = PspHttp(
            settings.novasend_base_url,
            psp=self.name,
            timeout_seconds=settings.psp_timeout_seconds,
            retry=RetryPolicy(settings.psp_retry_attempts, settings.psp_retry_backoff_seconds),
            auth=(
                settings.novasend_api_key.get_secret_value(),
                settings.novasend_api_client.get_secret_value(),
            ),
            headers={"Accept-Language": "en"},
            transport=transport,
        )
        self._account_id = settings.novasend_account_id
        self._webhook_secret = settings.novasend_webhook_secret.get_secret_value()
        self._poll_every = timedelta(seconds=settings.novasend_poll_seconds)
        self._clock = clock

    def prepare(self, attempt: Attempt) -> dict[str, Any]:
        return {"idempotency_key": str(uuid.uuid4())}

    async def initiate(self, attempt: Attempt) -> ProviderResult:
        response = await self._http.request(
            "POST",
            "/v1/payin/sessions",
            json=transformers.session_request(attempt, self._account_id),
            headers={"X-Idempotency-Key": attempt.data["idempotency_key"]},
        )
        if response.status_code == 409:
            # The key was used already: that session is ours; its status is the answer.
            return await self.fetch_status(attempt)
        body = json_body(response)
        if response.is_success:
            return self._scheduled(attempt, transformers.payin_result(body))
        return transformers.rejection(response.status_code, body)

    async def fetch_status(self, attempt: Attempt) -> ProviderResult:
        reference = attempt.psp_reference
        if not reference:
            # Novasend is asked by the reference it generated; a lost creation answer is
            # recovered by the POST again under the same X-Idempotency-Key (the engine's way).
            raise AttemptNotFound(str(attempt.payment_id))
        response = await self._http.request("GET", f"/v1/payin/{reference}")
        if response.status_code == 404:
            raise AttemptNotFound(reference)
        if not response.is_success:
            return self._scheduled(attempt, ProviderResult(status=None))
        return self._scheduled(attempt, transformers.payin_result(json_body(response)))

    async def submit_otp(self, attempt: Attempt, otp: str) -> ProviderResult:
        raise FlowNotSupported("Novasend customers confirm in their wallet or by link")

    async def cancel(self, attempt: Attempt) -> ProviderResult:
        raise FlowNotSupported("Novasend has no payin cancellation")

    async def refund(self, attempt: Attempt, refund: RefundAttempt) -> RefundResult:
        response = await self._http.request(
            "POST",
            "/v1/payout",
            json=transformers.payout_request(attempt, str(refund.refund_id), refund.amount),
            headers={"X-Idempotency-Key": str(refund.refund_id)},
        )
        if response.status_code == 409:
            return await self.fetch_refund_status(attempt, refund)
        body = json_body(response)
        if not response.is_success:
            failed = transformers.rejection(response.status_code, body)
            return RefundResult(
                status="failed",
                failure_code=failed.failure_code,
                failure_message=failed.failure_message,
            )
        return self._refund_scheduled(transformers.payout_result(body))

    async def fetch_refund_status(self, attempt: Attempt, refund: RefundAttempt) -> RefundResult:
        response = await self._http.request("GET", f"/v1/payout/{refund.refund_id}")
        if response.status_code == 404:
            raise AttemptNotFound(str(refund.refund_id))
        if not response.is_success:
            return self._refund_scheduled(RefundResult(status="pending"))
        return self._refund_scheduled(transformers.payout_result(json_body(response)))

    def parse_callback(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> CallbackEvent:
        webhooks.verify_signature(self._webhook_secret, headers, body)
        return webhooks.parse_event(body)

    async def aclose(self) -> None:
        await self._http.aclose()

    def _scheduled(self, attempt: Attempt, result: ProviderResult) -> ProviderResult:
        return replace(result, next_poll_at=next_poll_at(attempt, self._clock(), self._poll_every))

    def _refund_scheduled(self, result: RefundResult) -> RefundResult:
        if result.status != "pending":
            return result
        return replace(result, next_poll_at=self._clock() + self._poll_every)
