"""Every error the API answers is the seed's `ApiError`: {"error": {type, code, message,
param, doc_url}}. Codes are stable and documented in docs/errors.md."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from fluxpay_common.consumer import TRANSIENT_ERRORS
from fluxpay_common.logging import get_logger

log = get_logger(__name__)
DOC_BASE_URL = "https://docs.fluxxpay.me/errors"


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        param: str | None = None,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.kind = kind or _default_type(status)
        self.headers = headers


# The HTTP status of each refusal the services answer with: they speak domain codes, the
# gateway speaks HTTP. A code not listed keeps the reply's own status (or 500).
STATUS_BY_CODE: dict[str, int] = {
    # orchestrator
    "payment_not_found": 404,
    "reference_already_exists": 409,
    "operator_unavailable": 422,
    "payment_not_awaiting_otp": 409,
    "payment_not_awaiting_payment": 409,
    "payment_not_cancellable": 409,
    "otp_not_ready": 409,
    "otp_invalid": 422,
    "otp_attempts_exceeded": 422,
    "provider_unavailable": 503,
    "payment_not_refundable": 409,
    "refund_already_pending": 409,
    "amount_invalid": 422,
    "refund_exceeds_payment": 422,
    "insufficient_balance": 422,
    "balance_unavailable": 503,
    # ledger and webhook dispatcher
    "invalid_starting_after": 400,
    "parameter_missing": 400,
    "parameter_invalid": 400,
    "event_not_found": 404,
    "webhook_endpoint_not_found": 404,
    "endpoint_disabled": 409,
    "test_key_required": 403,
    # any service's request that failed on its side
    "internal_error": 500,
}


def status_for(code: str, fallback: int | None) -> int:
    return STATUS_BY_CODE.get(code) or fallback or 500


def _default_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "api_error"
    return "invalid_request_error"


def error_body(
    code: str, message: str, param: str | None, kind: str, doc_base_url: str = DOC_BASE_URL
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "type": kind,
        "code": code,
        "message": message,
        "doc_url": f"{doc_base_url}#{code}",
    }
    if param is not None:
        error["param"] = param
    return {"error": error}


def error_response(exc: ApiError, doc_base_url: str = DOC_BASE_URL) -> Response:
    return Response(
        orjson.dumps(error_body(exc.code, exc.message, exc.param, exc.kind, doc_base_url)),
        status_code=exc.status,
        media_type="application/json",
        # Also on answers that bypass the edge middleware (an unhandled error's 500).
        headers={"X-Content-Type-Options": "nosniff", **(exc.headers or {})},
    )


def _param_of(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc[1:]]
    if not parts:
        return None
    if loc and loc[0] == "header":
        # Header names as the merchant writes them.
        return "-".join(w.capitalize() for w in str(loc[1]).replace("_", "-").split("-"))
    return ".".join(parts)


def validation_error(exc: RequestValidationError) -> ApiError:
    errors = exc.errors()
    if not errors:
        return ApiError(400, "parameter_invalid", "The request is invalid.")
    first = errors[0]
    loc = tuple(first.get("loc", ()))
    kind = first.get("type", "")
    param = _param_of(loc)
    if kind == "json_invalid":
        return ApiError(400, "invalid_json", "The request body is not valid JSON.")
    if kind == "missing":
        return ApiError(400, "parameter_missing", f"'{param}' is required.", param)
    if loc == ("body",):
        return ApiError(400, "invalid_body", "The request body must be a JSON object.")
    reason = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return ApiError(400, "parameter_invalid", f"'{param}': {reason}.", param)


# Framework-level refusals, each under a documented code (there is no catch-all code).
_HTTP_ERRORS = {
    400: ("invalid_body", "The request body could not be read."),
    404: ("resource_not_found", "No such endpoint."),
    405: ("method_not_allowed", "This method is not allowed on this endpoint."),
    413: ("request_too_large", "The request body is too large."),
}


def http_error(status: int) -> ApiError:
    if status in _HTTP_ERRORS:
        code, message = _HTTP_ERRORS[status]
        return ApiError(status, code, message)
    if status >= 500:
        return ApiError(500, "internal_error", "Something went wrong on our side; retry later.")
    return ApiError(400, "invalid_body", "The request could not be read.")


def install(app: FastAPI, doc_base_url: str) -> None:
    async def on_api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc, doc_base_url)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error(exc), doc_base_url)

    async def on_http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(http_error(exc.status_code), doc_base_url)

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        if isinstance(exc, TRANSIENT_ERRORS):
            # Our database or broker is unreachable for a moment: a retry will work.
            log.warning("dependency_unavailable", error=repr(exc))
            return error_response(
                ApiError(
                    503,
                    "service_unavailable",
                    "FluxPay is briefly unavailable; retry the request (with the same"
                    " Idempotency-Key).",
                    headers={"Retry-After": "1"},
                ),
                doc_base_url,
            )
        log.error("unhandled_error", error=repr(exc), exc_info=True)
        return error_response(
            ApiError(500, "internal_error", "Something went wrong on our side; retry later."),
            doc_base_url,
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
