"""MTN MoMo Open API (collection; refunds through disbursement).

- token: `POST /{product}/token/` with Basic `api_user:api_key` and
  `Ocp-Apim-Subscription-Key`; cached until shortly before `expires_in`, renewed on 401;
- `POST /collection/v1_0/requesttopay` with an `X-Reference-Id` persisted before the
  call and reused on every retry; `202` accepted; `409` for a known reference means
  "already accepted, go poll";
- `GET /collection/v1_0/requesttopay/{id}` is the truth; MTN calls back once and never
  retries, so polling is mandatory and a callback is re-checked before it has an effect;
- refunds: `POST /disbursement/v1_0/refund` (`referenceIdToRefund`), same key discipline.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import httpx

from fluxpay_common.ids import utcnow
from fluxpay_common.logging import get_logger
from provider_connectors.config import Settings
from provider_connectors.connectors.base import (
    AttemptNotFound,
    Clock,
    FlowNotSupported,
    ProviderMisconfigured,
    ProviderUnavailable,
)
from provider_connectors.connectors.http import PspHttp, RetryPolicy, json_body
from provider_connectors.connectors.mtn_momo import transformers, webhooks
from provider_connectors.connectors.polling import next_poll_at
from provider_connectors.domain.model import (
    ACCEPTED_BY_PSP,
    Attempt,
    CallbackEvent,
    ProviderResult,
    RefundAttempt,
    RefundResult,
)

log = get_logger(__name__)
TOKEN_MARGIN_SECONDS = 60


@dataclass(frozen=True)
class Product:
    """One MTN product (collection, disbursement): its own user, key and subscription."""

    name: str
    api_user: str
    api_key: str
    subscription_key: str


@dataclass
class _Token:
    value: str
    valid_until: float


class MtnMomoConnector:
    name = "mtn_momo"

    def __init__(self, settings: Settings, clock: Clock = utcnow, transport: Any = None) -> None:
        self._http = PspHttp(
            settings.mtn_momo_base_url,
            psp=self.name,
            timeout_seconds=settings.psp_timeout_seconds,
            retry=RetryPolicy(settings.psp_retry_attempts, settings.psp_retry_backoff_seconds),
            transport=transport,
        )
        self._collection = Product(
            "collection",
            settings.mtn_momo_api_user,
            settings.mtn_momo_api_key.get_secret_value(),
            settings.mtn_momo_subscription_key.get_secret_value(),
        )
        self._disbursement = Product(
            "disbursement",
            settings.mtn_momo_disbursement_api_user,
            settings.mtn_momo_disbursement_api_key.get_secret_value(),
            settings.mtn_momo_disbursement_subscription_key.get_secret_value(),
        )
        self._environment = settings.mtn_momo_target_environment
        self._callback_base = settings.mtn_momo_callback_url
        self._callback_secret = settings.mtn_momo_callback_secret.get_secret_value()
        self._poll_every = timedelta(seconds=settings.mtn_momo_poll_seconds)
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._token_locks = {"collection": asyncio.Lock(), "disbursement": asyncio.Lock()}

    def prepare(self, attempt: Attempt) -> dict[str, Any]:
        return {"reference_id": str(uuid.uuid4())}

    async def initiate(self, attempt: Attempt) -> ProviderResult:
        reference_id = attempt.data["reference_id"]
        headers = {"X-Reference-Id": reference_id, **self._callback(attempt.payment_id, "payment")}
        response = await self._call(
            self._collection,
            "POST",
            "/collection/v1_0/requesttopay",
            headers=headers,
            json=transformers.request_to_pay(attempt),
        )
        if response.status_code == 409:
            return await self.fetch_status(attempt)
        if response.is_success:
            accepted = ProviderResult(status="processing", psp_reference=reference_id)
            return self._scheduled(attempt, accepted)
        return transformers.rejection(response.status_code, json_body(response))

    async def fetch_status(self, attempt: Attempt) -> ProviderResult:
        reference_id = attempt.data["reference_id"]
        response = await self._call(
            self._collection, "GET", f"/collection/v1_0/requesttopay/{reference_id}"
        )
        if response.status_code == 404:
            raise AttemptNotFound(reference_id)
        if not response.is_success:
            return self._scheduled(attempt, ProviderResult(status=None))
        result = transformers.collection_result(json_body(response))
        return self._scheduled(attempt, replace(result, psp_reference=reference_id))

    async def submit_otp(self, attempt: Attempt, otp: str) -> ProviderResult:
        raise FlowNotSupported("MTN MoMo customers approve on their phone")

    async def cancel(self, attempt: Attempt) -> ProviderResult:
        raise FlowNotSupported("a requesttopay cannot be cancelled at MTN")

    async def refund(self, attempt: Attempt, refund: RefundAttempt) -> RefundResult:
        headers = {
            "X-Reference-Id": transformers.reference_id(refund.refund_id),
            **self._callback(refund.refund_id, "refund"),
        }
        response = await self._call(
            self._disbursement,
            "POST",
            "/disbursement/v1_0/refund",
            headers=headers,
            json=transformers.refund_request(attempt, str(refund.refund_id), refund.amount),
        )
        if response.status_code == 409 or response.is_success:
            accepted = RefundResult(status="pending", data={ACCEPTED_BY_PSP: True})
            return self._refund_scheduled(accepted)
        refused = transformers.rejection(response.status_code, json_body(response))
        return RefundResult(
            status="failed",
            failure_code=refused.failure_code,
            failure_message=refused.failure_message,
        )

    async def fetch_refund_status(self, attempt: Attempt, refund: RefundAttempt) -> RefundResult:
        response = await self._call(
            self._disbursement,
            "GET",
            f"/disbursement/v1_0/refund/{transformers.reference_id(refund.refund_id)}",
        )
        if response.status_code == 404:
            raise AttemptNotFound(str(refund.refund_id))
        if not response.is_success:
            return self._refund_scheduled(RefundResult(status="pending"))
        return self._refund_scheduled(transformers.refund_result(json_body(response)))

    def parse_callback(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> CallbackEvent:
        return webhooks.parse_event(self._callback_secret, body, query)

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------ plumbing

    def _callback(self, subject: uuid.UUID, kind: str) -> dict[str, str]:
        if not self._callback_base:
            return {}
        url = webhooks.callback_url(self._callback_base, self._callback_secret, subject, kind)
        return {"X-Callback-Url": url}

    async def _call(
        self, product: Product, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        """A product call with a valid token; one renewal when MTN says it expired."""
        extra = kwargs.pop("headers", {})
        for renewal in (False, True):
            headers = {
                "Authorization": f"Bearer {await self._token(product, renew=renewal)}",
                "Ocp-Apim-Subscription-Key": product.subscription_key,
                "X-Target-Environment": self._environment,
                **extra,
            }
            response = await self._http.request(method, path, headers=headers, **kwargs)
            if response.status_code != 401:
                return response
        log.error("mtn_momo_access_denied", product=product.name, call=f"{method} {path}")
        raise ProviderMisconfigured(f"MTN MoMo denied access to {product.name}: check credentials")

    async def _token(self, product: Product, *, renew: bool = False) -> str:
        async with self._token_locks[product.name]:
            cached = self._tokens.get(product.name)
            if cached and not renew and cached.valid_until > time.monotonic():
                return cached.value
            response = await self._http.request(
                "POST",
                f"/{product.name}/token/",
                auth=(product.api_user, product.api_key),
                headers={"Ocp-Apim-Subscription-Key": product.subscription_key},
            )
            body = json_body(response)
            if not response.is_success or "access_token" not in body:
                log.error(
                    "mtn_momo_token_refused", product=product.name, status=response.status_code
                )
                if 400 <= response.status_code < 500:
                    # 404: wrong base URL or product not provisioned; 401/403: credentials.
                    raise ProviderMisconfigured(
                        f"MTN MoMo refused the {product.name} token (HTTP"
                        f" {response.status_code}): check the base URL, the product"
                        " subscription and the API user"
                    )
                raise ProviderUnavailable(f"MTN MoMo token refused ({response.status_code})")
            lifetime = float(body.get("expires_in") or 3600) - TOKEN_MARGIN_SECONDS
            self._tokens[product.name] = _Token(
                str(body["access_token"]), time.monotonic() + max(lifetime, 1.0)
            )
            return str(body["access_token"])

    def _scheduled(self, attempt: Attempt, result: ProviderResult) -> ProviderResult:
        return replace(result, next_poll_at=next_poll_at(attempt, self._clock(), self._poll_every))

    def _refund_scheduled(self, result: RefundResult) -> RefundResult:
        if result.status != "pending":
            return result
        return replace(result, next_poll_at=self._clock() + self._poll_every)
