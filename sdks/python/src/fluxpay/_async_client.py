"""The asynchronous client: `AsyncFluxPay(api_key=...)`, the same API awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from fluxpay import _base
from fluxpay._async_resources import (
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
from fluxpay._base import Call, ClientConfig, RetryPolicy

M = TypeVar("M", bound=BaseModel)


class AsyncFluxPay:
    """The async twin of `FluxPay`: same resources, same retries, methods awaited and
    lists iterated with `async for`."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._config = ClientConfig.build(api_key, base_url, timeout, max_retries, retry_policy)
        self._http = http_client or httpx.AsyncClient(timeout=self._config.timeout)
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

    async def request(self, call: Call, cast: type[M]) -> M:
        """Send `call` with retries; its answer as `cast`, or a typed error."""
        response = await self._send_with_retries(call)
        return _base.parse_answer(response, cast)

    async def _send_with_retries(self, call: Call) -> httpx.Response:
        policy = self._config.retry
        retry = 0
        while True:
            try:
                response = await self._send(call)
            except httpx.TransportError as exc:
                if retry >= policy.max_retries or not policy.retries_transport_error(exc, call):
                    raise _base.connection_error(exc) from exc
                retry += 1
                await self._sleep(policy.delay(retry))
                continue
            if retry >= policy.max_retries or not policy.retries_answer(response.status_code, call):
                return response
            retry += 1
            await self._sleep(policy.delay(retry, response.headers))

    async def _send(self, call: Call) -> httpx.Response:
        return await self._http.request(
            call.method,
            self._config.base_url + call.path,
            params=call.params,
            json=call.json,
            headers={**self._config.headers(), **_base.request_headers(call)},
            timeout=self._config.timeout,
        )

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncFluxPay:
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.aclose()
