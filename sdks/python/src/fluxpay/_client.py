"""The synchronous client: `FluxPay(api_key=...)`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from fluxpay import _base
from fluxpay._base import Call, ClientConfig, RetryPolicy
from fluxpay._resources import (
    ApiKeys,
    Balance,
    Dues,
    Events,
    Operators,
    PaymentLinks,
    Payments,
    PaymentTypes,
    Refunds,
    WebhookEndpoint,
    Webhooks,
)

M = TypeVar("M", bound=BaseModel)


class FluxPay:
    """A FluxPay API client; the key decides the environment (test or live).

    `timeout` (seconds or an `httpx.Timeout`) bounds each try; `max_retries` (default 2)
    bounds the retries of connection errors, 5xx and 429 (`Retry-After` honoured). Reads
    and creates (each create carries one Idempotency-Key on all its tries) are retried;
    other 4xx never are.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = ClientConfig.build(api_key, base_url, timeout, max_retries, retry_policy)
        self._http = http_client or httpx.Client(timeout=self._config.timeout)
        self._owns_http = http_client is None
        self._sleep = sleep
        self.payments = Payments(self)
        self.refunds = Refunds(self)
        self.operators = Operators(self)
        self.balance = Balance(self)
        self.events = Events(self)
        self.webhook_endpoint = WebhookEndpoint(self)
        self.webhooks = Webhooks(self)
        self.api_keys = ApiKeys(self)
        self.payment_links = PaymentLinks(self)
        self.payment_types = PaymentTypes(self)
        self.dues = Dues(self)

    def request(self, call: Call, cast: type[M]) -> M:
        """Send `call` with retries; its answer as `cast`, or a typed error."""
        response = self._send_with_retries(call)
        return _base.parse_answer(response, cast)

    def _send_with_retries(self, call: Call) -> httpx.Response:
        policy = self._config.retry
        retry = 0
        while True:
            try:
                response = self._send(call)
            except httpx.TransportError as exc:
                if retry >= policy.max_retries or not policy.retries_transport_error(exc, call):
                    raise _base.connection_error(exc) from exc
                retry += 1
                self._sleep(policy.delay(retry))
                continue
            if retry >= policy.max_retries or not policy.retries_answer(response.status_code, call):
                return response
            retry += 1
            self._sleep(policy.delay(retry, response.headers))

    def _send(self, call: Call) -> httpx.Response:
        return self._http.request(
            call.method,
            self._config.base_url + call.path,
            params=call.params,
            json=call.json,
            headers={**self._config.headers(), **_base.request_headers(call)},
            timeout=self._config.timeout,
        )

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> FluxPay:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
