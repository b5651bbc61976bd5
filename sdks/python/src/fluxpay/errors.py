"""Every failure the SDK raises, typed by what the caller can do about it.

An answer from the API carries the seed's `ApiError` fields (`type`, `code`, `message`,
`param`, `doc_url`) and the gateway's `X-Request-Id`, which FluxPay support asks for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class FluxPayError(Exception):
    """Base of every SDK error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(FluxPayError):
    """The API could not be reached (DNS, refused connection, reset), after every retry."""


class APITimeoutError(APIConnectionError):
    """The API did not answer within the configured timeout, after every retry."""


class SignatureVerificationError(FluxPayError):
    """A webhook's `X-FluxPay-Signature` does not verify (wrong secret, tampered, stale)."""

    def __init__(self, message: str, header: str | None = None) -> None:
        super().__init__(message)
        self.header = header


class APIStatusError(FluxPayError):
    """The API answered with an error status; the body is the seed's `ApiError`."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        doc_url: str | None = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.type = type
        self.code = code
        self.param = param
        self.doc_url = doc_url
        self.request_id = request_id
        self.headers = dict(headers or {})
        self.body = body

    def __str__(self) -> str:
        where = f" (param: {self.param})" if self.param else ""
        request = f" [request {self.request_id}]" if self.request_id else ""
        return f"{self.http_status} {self.code or 'error'}: {self.message}{where}{request}"


class InvalidRequestError(APIStatusError):
    """400: the request is malformed or a parameter is invalid (`param` names it)."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, malformed, unknown or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this (e.g. a live key on a test-only route)."""


class NotFoundError(InvalidRequestError):
    """404: no such payment, event, endpoint or route for this merchant and environment."""


class ConflictError(InvalidRequestError):
    """409: the object's state forbids it, or an idempotency conflict."""


class IdempotencyError(ConflictError):
    """409 of type `idempotency_error`: the key was reused with another request, or in use."""


class UnprocessableError(InvalidRequestError):
    """422: understood but refused by a business rule (wrong OTP, refund too large...)."""


class RateLimitError(APIStatusError):
    """429: too many requests; retried automatically, raised once retries are exhausted."""


class APIError(APIStatusError):
    """5xx: a problem on FluxPay's side; retried automatically (creates keep their key)."""


def _class_for(status: int, kind: str | None) -> type[APIStatusError]:
    if status == 409 and kind == "idempotency_error":
        return IdempotencyError
    by_status: dict[int, type[APIStatusError]] = {
        400: InvalidRequestError,
        401: AuthenticationError,
        403: PermissionDeniedError,
        404: NotFoundError,
        409: ConflictError,
        422: UnprocessableError,
        429: RateLimitError,
    }
    if status in by_status:
        return by_status[status]
    return APIError if status >= 500 else APIStatusError


def error_from_response(
    status: int, body: Any, headers: Mapping[str, str], request_id: str | None
) -> APIStatusError:
    """The typed exception for an error answer, whatever its body (even non-JSON)."""
    error = body.get("error") if isinstance(body, dict) else None
    fields: dict[str, Any] = error if isinstance(error, dict) else {}
    message = fields.get("message") or f"HTTP {status} from the FluxPay API"
    return _class_for(status, fields.get("type"))(
        str(message),
        http_status=status,
        type=fields.get("type"),
        code=fields.get("code"),
        param=fields.get("param"),
        doc_url=fields.get("doc_url"),
        request_id=request_id,
        headers=headers,
        body=body,
    )
