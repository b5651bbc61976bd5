"""Stripe cards through hosted Checkout Sessions (seed 003; Stripe's API reference).

- form-encoded requests, `Authorization: Bearer <secret key>`, a pinned `Stripe-Version`
  and an `Idempotency-Key` on every creation (derived from ids persisted before the call,
  with identical parameters on every retry, so Stripe replays instead of creating twice);
- `POST /v1/checkout/sessions` -> `awaiting_payment` with the session `url`;
- `GET /v1/checkout/sessions/{id}` (payment intent, charge and balance transaction
  expanded: the fee) is the status; `POST .../expire` cancels an open session;
- refunds: `POST /v1/refunds` on the payment intent, `GET /v1/refunds/{id}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from fluxpay_common.ids import utcnow
from provider_connectors.config import Settings
from provider_connectors.connectors.base import (
    AttemptNotFound,
    Clock,
    FlowNotSupported,
    ProviderUnavailable,
)
from provider_connectors.connectors.http import PspHttp, RetryPolicy, json_body
from provider_connectors.connectors.polling import next_poll_at
from provider_connectors.connectors.stripe import transformers, webhooks
from provider_connectors.connectors.stripe.forms import form_encode
from provider_connectors.domain.model import (
    Attempt,
    CallbackEvent,
    ProviderResult,
    RefundAttempt,
    RefundResult,
)

FORM = "application/x-www-form-urlencoded"


class StripeConnector:
    name = "stripe"

    def __init__(self, settings: Settings, clock: Clock = utcnow, transport: Any = None) -> None:
        self._http = PspHttp(
            settings.stripe_base_url,
            psp=self.name,
            timeout_seconds=settings.psp_timeout_seconds,
            retry=RetryPolicy(settings.psp_retry_attempts, settings.psp_retry_backoff_seconds),
            headers={
                "Authorization": f"Bearer {settings.stripe_secret_key.get_secret_value()}",
                "Stripe-Version": settings.stripe_api_version,
            },
            transport=transport,
        )
        self._webhook_secret = settings.stripe_webhook_secret.get_secret_value()
        self._tolerance = settings.stripe_webhook_tolerance_seconds
        self._success_url, self._cancel_url = settings.stripe_return_urls
        self._poll_every = timedelta(seconds=settings.stripe_poll_seconds)
        self._clock = clock

    def prepare(self, attempt: Attempt) -> dict[str, Any]:
        return {"idempotency_key": f"fluxpay-checkout-{attempt.payment_id}"}

    async def initiate(self, attempt: Attempt) -> ProviderResult:
        params = transformers.session_params(
            attempt,
            transformers.return_url(self._success_url, attempt),
            transformers.return_url(self._cancel_url, attempt),
        )
        response = await self._post(
            "/v1/checkout/sessions", params, attempt.data["idempotency_key"]
        )
        body = json_body(response)
        if response.is_success:
            return self._scheduled(attempt, transformers.session_result(body))
        code, message = transformers.error_of(body)
        return ProviderResult(status="failed", failure_code=code, failure_message=message)

    async def fetch_status(self, attempt: Attempt) -> ProviderResult:
        session_id = attempt.data.get("stripe_session_id") or attempt.psp_reference
        if not session_id:
            # Never answered: re-sending under the same Idempotency-Key replays the answer.
            raise AttemptNotFound(str(attempt.payment_id))
        expand = [("expand[]", field) for field in transformers.SESSION_EXPAND]
        response = await self._http.request(
            "GET", f"/v1/checkout/sessions/{session_id}", params=expand
        )
        if response.status_code == 404:
            raise AttemptNotFound(session_id)
        if not response.is_success:
            return self._scheduled(attempt, ProviderResult(status=None))
        cancel_requested = bool(attempt.data.get("cancel_requested_at"))
        result = transformers.session_result(json_body(response), cancel_requested)
        return self._scheduled(attempt, result)

    async def submit_otp(self, attempt: Attempt, otp: str) -> ProviderResult:
        raise FlowNotSupported("card payments authenticate on Stripe's checkout page")

    async def cancel(self, attempt: Attempt) -> ProviderResult:
        session_id = attempt.data.get("stripe_session_id") or attempt.psp_reference
        if not session_id:
            raise FlowNotSupported("no checkout session to expire yet")
        response = await self._post(
            f"/v1/checkout/sessions/{session_id}/expire", {}, f"fluxpay-expire-{session_id}"
        )
        if response.is_success:
            return transformers.session_result(json_body(response), cancel_requested=True)
        # Not open any more: it may have been paid meanwhile. Stripe's status decides.
        return await self.fetch_status(attempt)

    async def refund(self, attempt: Attempt, refund: RefundAttempt) -> RefundResult:
        intent = attempt.data.get("stripe_payment_intent")
        if not intent:
            return RefundResult(
                status="failed",
                failure_code="payment_intent_unknown",
                failure_message="No Stripe payment intent is known for this payment.",
            )
        params = transformers.refund_params(attempt, str(refund.refund_id), refund.amount, intent)
        response = await self._post("/v1/refunds", params, f"fluxpay-refund-{refund.refund_id}")
        body = json_body(response)
        if response.is_success:
            return self._refund_scheduled(transformers.refund_result(body))
        code, message = transformers.error_of(body)
        return RefundResult(status="failed", failure_code=code, failure_message=message)

    async def fetch_refund_status(self, attempt: Attempt, refund: RefundAttempt) -> RefundResult:
        if not refund.psp_reference:
            raise AttemptNotFound(str(refund.refund_id))
        response = await self._http.request("GET", f"/v1/refunds/{refund.psp_reference}")
        if response.status_code == 404:
            raise AttemptNotFound(refund.psp_reference)
        if not response.is_success:
            return self._refund_scheduled(RefundResult(status="pending"))
        return self._refund_scheduled(transformers.refund_result(json_body(response)))

    def parse_callback(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> CallbackEvent:
        webhooks.verify_signature(self._webhook_secret, headers, body, self._tolerance)
        return webhooks.parse_event(body)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, params: Mapping[str, Any], key: str) -> httpx.Response:
        response = await self._http.request(
            "POST",
            path,
            content=urlencode(form_encode(params)).encode(),
            headers={"Content-Type": FORM, "Idempotency-Key": key},
        )
        if response.status_code == 409:
            # The same key is still in flight at Stripe: the outcome is not known yet.
            raise ProviderUnavailable(f"stripe {path}: idempotent request in progress")
        return response

    def _scheduled(self, attempt: Attempt, result: ProviderResult) -> ProviderResult:
        return replace(result, next_poll_at=next_poll_at(attempt, self._clock(), self._poll_every))

    def _refund_scheduled(self, result: RefundResult) -> RefundResult:
        if result.status != "pending":
            return result
        return replace(result, next_poll_at=self._clock() + self._poll_every)
