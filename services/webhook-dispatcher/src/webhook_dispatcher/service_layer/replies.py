"""The errors a merchant command answers with (the gateway renders them as the ApiError)."""

from __future__ import annotations

from typing import assert_never

from fluxpay_common.messages import ErrorBody, QueryReply
from webhook_dispatcher.domain.replay import Refusal

INVALID_REQUEST = "invalid_request_error"
ENDPOINT_HELP = "Set a webhook URL with PUT /api/v1/webhook_endpoint"


class Refused(Exception):
    """Raised inside a command's transaction: it rolls back (the inbox record too)."""

    def __init__(self, reply: QueryReply) -> None:
        super().__init__(reply.error.code if reply.error else "refused")
        self.reply = reply


def error(status: int, code: str, message: str, param: str | None = None) -> QueryReply:
    return QueryReply(
        error=ErrorBody(
            status=status, type=INVALID_REQUEST, code=code, message=message, param=param
        )
    )


def parameter_missing(param: str) -> QueryReply:
    return error(400, "parameter_missing", f"'{param}' is required.", param)


def parameter_invalid(param: str, message: str) -> QueryReply:
    return error(400, "parameter_invalid", message, param)


def invalid_starting_after(value: str) -> QueryReply:
    return error(
        400,
        "invalid_starting_after",
        f"'{_shown(value)}' is not an event of this merchant and environment.",
        "starting_after",
    )


def event_not_found(event_id: str) -> QueryReply:
    return error(
        404,
        "event_not_found",
        f"No event '{_shown(event_id)}' for this merchant and environment.",
        "event_id",
    )


def endpoint_not_found() -> QueryReply:
    return error(
        404,
        "webhook_endpoint_not_found",
        f"This merchant has no webhook endpoint. {ENDPOINT_HELP}.",
    )


def endpoint_disabled() -> QueryReply:
    return error(
        409,
        "endpoint_disabled",
        "The webhook endpoint is disabled (GET /api/v1/webhook_endpoint says why)."
        f" Fix it, then re-enable it: {ENDPOINT_HELP} again.",
    )


def test_key_required() -> QueryReply:
    return error(
        403,
        "test_key_required",
        "The event stream relays test events only: use a test API key.",
    )


def refused(refusal: Refusal) -> QueryReply:
    match refusal:
        case "endpoint_not_found":
            return endpoint_not_found()
        case "endpoint_disabled":
            return endpoint_disabled()
        case _:
            assert_never(refusal)


def _shown(value: str) -> str:
    """A merchant-supplied id echoed back, bounded."""
    return value if len(value) <= 100 else value[:100] + "…"
