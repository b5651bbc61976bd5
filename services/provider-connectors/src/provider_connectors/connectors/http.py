"""HTTP to a PSP: bounded retries with backoff on timeouts, connection errors, 429 and 5xx.

Only requests that are safe to repeat go through here (reads, and writes carrying the
PSP's idempotency key or our own unique reference), so retrying never charges twice.
After the last try the outcome is unknown: `ProviderUnavailable`, never a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from fluxpay_common.logging import get_logger
from provider_connectors.connectors.base import ProviderUnavailable

log = get_logger(__name__)
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 5.0

    def delay(self, attempt: int) -> float:
        return min(self.backoff_seconds * 2**attempt, self.max_backoff_seconds)


class PspHttp:
    """One pooled httpx client per connector process."""

    def __init__(
        self,
        base_url: str,
        *,
        psp: str,
        timeout_seconds: float,
        retry: RetryPolicy,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.psp = psp
        self._retry = retry
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0)),
            headers=dict(headers or {}),
            auth=auth,
            transport=transport,
        )

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The PSP's answer (2xx or a definitive 4xx), or `ProviderUnavailable`."""
        problem = ""
        for attempt in range(self._retry.attempts):
            try:
                response = await self._client.request(method, path, **kwargs)
            except httpx.TimeoutException as exc:
                problem = f"timeout ({type(exc).__name__})"
            except httpx.TransportError as exc:
                problem = f"connection error ({type(exc).__name__})"
            else:
                if response.status_code not in RETRYABLE_STATUS:
                    return response
                problem = f"HTTP {response.status_code}"
            if attempt + 1 < self._retry.attempts:
                delay = self._retry.delay(attempt)
                log.warning(
                    "psp_call_retrying",
                    psp=self.psp,
                    call=f"{method} {path}",
                    problem=problem,
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
        raise ProviderUnavailable(f"{self.psp} {method} {path}: {problem}")

    async def aclose(self) -> None:
        await self._client.aclose()


def json_body(response: httpx.Response) -> dict[str, Any]:
    """A PSP's JSON object answer; anything else reads as an empty object."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {"items": body}
