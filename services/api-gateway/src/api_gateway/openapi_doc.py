"""The whole gateway's OpenAPI document (`/api/v1/openapi.json`), built from its routes.

FastAPI describes paths, parameters and bodies; this module adds what FastAPI cannot know:
the bearer security scheme (instead of the authentication headers as parameters), the real
success statuses, and every error status a route can answer, each with the `ApiError`
schema. The seed's own document stays untouched at `/api/v1/collect/openapi.json`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api_gateway.roles import READ_METHODS

AUTH_HEADERS = frozenset({"authorization", "x-api-key", "x-fluxx-environment"})
PAYMENT = "/api/v1/collect/payments/{reference_or_id}"
EVENT = "/api/v1/events/{event_id}"
# Statuses beyond the common ones (400, 401, 403 on writes, 404 with a path id, 429, 503).
EXTRA_ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/api/v1/collect/payments"): (409, 422),
    ("post", f"{PAYMENT}/confirm"): (409, 422, 503),
    ("post", f"{PAYMENT}/cancel"): (409,),
    ("post", f"{PAYMENT}/refunds"): (409, 422),
    ("post", f"{EVENT}/replay"): (409,),
    ("post", "/api/v1/events/replay"): (404, 409),
    ("post", "/api/webhooks/test"): (404, 409),
    ("post", "/api/v1/webhooks/test"): (404, 409),
    ("get", "/api/v1/webhook_endpoint"): (404,),
    ("post", "/api/v1/webhook_endpoint/rotate_secret"): (404,),
    ("post", "/api/v1/api_keys/{key_id}/rotate"): (409,),
    ("get", "/api/v1/dues"): (404,),
    ("post", "/api/v1/dues/{due_id}/cancel"): (409,),
    ("post", "/api/v1/payment_types/{payment_type_id}/payers"): (409,),
    # Public: no key, limited per client IP.
    ("get", "/api/v1/links/{slug}"): (429,),
}
# Successes other than the decorator's status (an idempotent replay answers 200).
SUCCESSES: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/api/v1/collect/payments"): (200, 201),
    ("post", f"{PAYMENT}/refunds"): (200, 201),
    ("post", f"{EVENT}/replay"): (202,),
    ("post", "/api/v1/events/replay"): (202,),
    ("post", "/api/webhooks/test"): (202,),
    ("post", "/api/v1/webhooks/test"): (202,),
}
ERROR_TEXT = {
    400: "Bad input: a missing, unknown or invalid parameter or body field",
    401: "No API key, or an invalid, expired or revoked one",
    403: "The API key's role does not allow this request (`insufficient_permissions`)",
    404: "No such object for this merchant and environment",
    409: "A conflict with the object's state or an Idempotency-Key",
    422: "Well-formed but refused by a business rule",
    429: "Rate limit exceeded (`rate_limit_exceeded`); see the Retry-After header",
    503: "A dependency is briefly unavailable; retry",
}
API_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "code", "message"],
            "properties": {
                "type": {"type": "string"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "param": {"type": "string"},
                "doc_url": {"type": "string", "format": "uri"},
            },
        }
    },
}
OWN_DOCUMENTS = {
    "/api/v1/collect/openapi.json": "The seed's Collect API document, unchanged",
    "/api/v1/openapi.json": "This document: every route of the gateway",
}


def build(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title="FluxPay API (gateway)",
        version="2026-06",
        openapi_version="3.1.0",
        description="Every merchant route of the FluxPay gateway. Errors are `ApiError`.",
        routes=app.routes,
    )
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            _complete(method, path, operation)
    for path, summary in OWN_DOCUMENTS.items():
        doc["paths"][path] = {"get": _document_operation(summary)}
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["ApiError"] = API_ERROR
    doc["components"]["securitySchemes"] = {
        "BearerApiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "A merchant API key (UUID); `X-API-Key: <key>` works too.",
        }
    }
    return doc


def _complete(method: str, path: str, operation: dict[str, Any]) -> None:
    params = operation.get("parameters", [])
    authenticated = any(p["in"] == "header" and p["name"].lower() in AUTH_HEADERS for p in params)
    operation["parameters"] = [
        p for p in params if not (p["in"] == "header" and p["name"].lower() in AUTH_HEADERS)
    ]
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    _set_successes(method, path, responses)
    for status in _error_statuses(method, path, authenticated, params):
        responses[str(status)] = _error_response(status)
    if authenticated:
        operation["security"] = [{"BearerApiKey": []}]


def _set_successes(method: str, path: str, responses: dict[str, Any]) -> None:
    wanted = SUCCESSES.get((method, path))
    if wanted is None:
        return
    template = next(iter(v for k, v in responses.items() if k.startswith("2")), None)
    for documented in [k for k in responses if k.startswith("2")]:
        del responses[documented]
    for status in wanted:
        responses[str(status)] = template or {"description": "Success"}


def _error_statuses(
    method: str, path: str, authenticated: bool, params: list[dict[str, Any]]
) -> list[int]:
    statuses = {400, 503}
    if authenticated:
        statuses |= {401, 429}
        if method.upper() not in READ_METHODS:
            statuses.add(403)
    if any(p["in"] == "path" for p in params):
        statuses.add(404)
    statuses |= set(EXTRA_ERRORS.get((method, path), ()))
    return sorted(statuses)


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": ERROR_TEXT[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}},
    }
    if status in (429, 503):
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        }
    return response


def _document_operation(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "responses": {
            "200": {
                "description": "An OpenAPI 3.1 document",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    }
