"""What the sync and async clients share: configuration, the request each call makes, the
retry policy and how an answer becomes a model or a typed error. No I/O here."""

from __future__ import annotations

import email.utils
import os
import platform
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from fluxpay._version import __version__
from fluxpay.errors import APIConnectionError, APITimeoutError, FluxPayError, error_from_response

DEFAULT_BASE_URL = "https://api.fluxxpay.me/api/v1"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
REQUEST_ID_HEADER = "X-Request-Id"
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Call:
    """One API call. `replay_safe`: sending it twice has the effect of sending it once
    (a read, or a create carrying its Idempotency-Key), so it may be retried after the
    request may have reached the server."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    idempotency_key: str | None = None
    replay_safe: bool = True

    def with_params(self, **params: Any) -> Call:
        return replace(self, params={**(self.params or {}), **params})


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; `Retry-After` honoured up to `max_retry_after`."""

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def retries_status(self, status: int) -> bool:
        # 429 and 5xx only: any other 4xx would fail the same way again.
        return status == 429 or status >= 500

    def retries_transport_error(self, exc: httpx.TransportError, call: Call) -> bool:
        if call.replay_safe:
            return True
        # Not replay-safe: only when the request certainly never reached the server.
        return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)

    def retries_answer(self, status: int, call: Call) -> bool:
        # A 429 was refused before any effect; a 5xx's outcome is unknown.
        return self.retries_status(status) and (call.replay_safe or status == 429)

    def delay(self, retry_number: int, headers: Mapping[str, str] | None = None) -> float:
        """Seconds before retry `retry_number` (1 for the first retry)."""
        asked = retry_after_seconds(headers or {})
        if asked is not None:
            return min(asked, self.max_retry_after)
        ceiling = min(self.max_delay, self.initial_delay * 2 ** (retry_number - 1))
        # "Equal jitter": never less than half the ceiling, so clients spread without
        # retrying at once.
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` as seconds, from its delta-seconds or HTTP-date form."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class ClientConfig:
    api_key: str
    base_url: str
    timeout: httpx.Timeout
    retry: RetryPolicy

    @classmethod
    def build(
        cls,
        api_key: str | None,
        base_url: str | None,
        timeout: float | httpx.Timeout | None,
        max_retries: int | None,
        retry: RetryPolicy | None,
    ) -> ClientConfig:
        key = api_key or os.environ.get("FLUXPAY_API_KEY")
        if not key:
            raise FluxPayError(
                "No API key: pass api_key=... or set FLUXPAY_API_KEY (a test key while you"
                " develop)."
            )
        policy = retry or RetryPolicy()
        if max_retries is not None:
            policy = replace(policy, max_retries=max_retries)
        url = base_url or os.environ.get("FLUXPAY_BASE_URL") or DEFAULT_BASE_URL
        return cls(
            api_key=key,
            base_url=url.rstrip("/"),
            timeout=_timeout(timeout),
            retry=policy,
        )

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "User-Agent": f"fluxpay-python/{__version__} python/{platform.python_version()}",
        }


def _timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    if timeout is None:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, httpx.Timeout):
        return timeout
    return httpx.Timeout(timeout)


def request_headers(call: Call) -> dict[str, str]:
    return {"Idempotency-Key": call.idempotency_key} if call.idempotency_key else {}


def parse_answer(response: httpx.Response, cast: type[M]) -> M:
    """The model of a 2xx answer, or the typed error of any other."""
    if response.is_success:
        return cast.model_validate(response.json())
    raise status_error(response)


def status_error(response: httpx.Response) -> FluxPayError:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return error_from_response(
        response.status_code, body, response.headers, response.headers.get(REQUEST_ID_HEADER)
    )


def connection_error(exc: httpx.TransportError) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"The FluxPay API did not answer in time: {exc!r}")
    return APIConnectionError(f"Could not reach the FluxPay API: {exc!r}")
