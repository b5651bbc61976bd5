"""The gateway's edge, in front of every route (merchant API, account endpoints, hosted
checkout): input the platform cannot hold is refused here, with the `ApiError` shape,
before any route, message or database sees it. An ASGI middleware reads and checks the body
and the query; an app-wide dependency checks path parameters (it knows their names)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from api_gateway import input_rules
from api_gateway.errors import ApiError, error_response
from api_gateway.input_rules import Limits, Refusal

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# Sent on every answer: no browser guesses a type (a JSON error rendered as HTML), and no
# URL of ours (a checkout link is a payment id) leaks to another site in a Referer.
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]


class _ClientGone(Exception):
    pass


class EdgeGuard:
    def __init__(self, app: App, limits: Limits, doc_base_url: str) -> None:
        self.app = app
        self.limits = limits
        self.doc_base_url = doc_base_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send)
        try:
            body, refusal = await self._inspect(scope, receive)
        except _ClientGone:
            return
        if refusal is not None:
            answer = error_response(_api_error(refusal), self.doc_base_url)
            await answer(scope, receive, send)
            return
        await self.app(scope, _replaying(body, receive), send)

    async def _inspect(self, scope: Scope, receive: Receive) -> tuple[bytes, Refusal | None]:
        """The body, read whole, or why the request is refused (before reading, if we can)."""
        refusal = _check_target(scope) or self._check_declared_length(scope)
        if refusal is not None:
            return b"", refusal
        body, refusal = await self._read_body(receive)
        if refusal is None and body and _is_json(scope):
            refusal = input_rules.check_json_body(body, self.limits)
        return body, refusal

    def _check_declared_length(self, scope: Scope) -> Refusal | None:
        declared = first_header(scope, b"content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > self.limits.max_body_bytes
        ):
            return input_rules.request_too_large(self.limits.max_body_bytes)
        return None

    async def _read_body(self, receive: Receive) -> tuple[bytes, Refusal | None]:
        """The whole body, counted while it arrives: a chunked body has no Content-Length."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limits.max_body_bytes:
                return b"", input_rules.request_too_large(self.limits.max_body_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None


def _check_target(scope: Scope) -> Refusal | None:
    # Invalid UTF-8 in the query becomes lone surrogates, refused like a NUL.
    query = scope.get("query_string", b"").decode("latin-1")
    pairs = parse_qsl(query, keep_blank_values=True, errors="surrogateescape")
    return input_rules.check_query(pairs)


async def refuse_bad_path_parameters(request: Request) -> None:
    """An app-wide dependency: once a route has matched, its path parameters have names."""
    for name, value in request.path_params.items():
        if input_rules.has_forbidden_characters(str(value)):
            raise _api_error(input_rules.invalid_characters(name))


def _api_error(refusal: Refusal) -> ApiError:
    return ApiError(refusal.status, refusal.code, refusal.message, refusal.param)


def first_header(scope: Scope, name: bytes) -> str | None:
    """A request header (`name` in lower case), the first if repeated; None if absent."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _is_json(scope: Scope) -> bool:
    """The routes read a body without a content type as JSON too."""
    content_type = (first_header(scope, b"content-type") or "").split(";")[0].strip().lower()
    return content_type in ("", "application/json") or content_type.endswith("+json")


def _replaying(body: bytes, receive: Receive) -> Receive:
    """The app reads the body already read (once), then whatever else the client sends."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def _with_security_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            present = {bytes(name).lower() for name, _ in headers}
            headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
            message["headers"] = headers
        await send(message)

    return sending
