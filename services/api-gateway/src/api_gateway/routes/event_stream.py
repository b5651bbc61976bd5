"""`GET /api/v1/events/stream`: the merchant's new test events as Server-Sent Events, so a
developer receives them without a public URL (`fluxpay listen --forward-to ...`).

Each SSE event is one webhook event: `id` its event id, `event` its type, `data` a JSON
object `{"id", "type", "created_at", "body", "signature"}` where `body` is the exact raw
body a webhook delivery carries and `signature` a fresh `X-FluxPay-Signature` over it,
made by the webhook dispatcher with the merchant's secrets (the gateway never holds them).
Test keys only. The stream starts at the connection (no history: `GET /events` has it).

The dispatcher is asked every second for events created since the stream's cursor, minus
an overlap: an event whose transaction commits late can carry a `created_at` older than
events already sent, and the overlap (with the ids already sent) catches it exactly once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any, ClassVar

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import StreamingResponse

from api_gateway.errors import ApiError, error_body
from api_gateway.routes.collect import Who, reject_unknown_query, scope
from api_gateway.rpc import QueryService
from fluxpay_common.ids import utcnow
from fluxpay_common.messages import WebhooksCommand

router = APIRouter(dependencies=[Depends(reject_unknown_query)])
POLL_SECONDS = 1.0
PAGE = 100
OVERLAP = timedelta(seconds=10)
# A comment line now and then keeps proxies and idle timeouts from closing a quiet stream.
HEARTBEAT_EVERY = 15
# A developer runs a `fluxpay listen` or two; more is a leak or a loop (limit per process).
MAX_STREAMS_PER_MERCHANT = 5
TEST_ONLY = "The event stream relays test events only: use a test API key."


class _Streams:
    closing = False
    # Open streams per merchant in this process: each costs the dispatcher a query a second.
    open: ClassVar[Counter[uuid.UUID]] = Counter()


def close_streams() -> None:
    """The process is stopping: every open stream ends within a poll (clients reconnect to
    another gateway), instead of holding the graceful shutdown until its timeout."""
    _Streams.closing = True


class StreamCursor:
    """Where the stream stands: the newest `created_at` sent, and the ids sent recently."""

    def __init__(self, opened_at: datetime) -> None:
        self.opened_at = opened_at
        self.newest = opened_at
        self.sent: dict[str, datetime] = {}
        # A full page: the next one starts at the newest sent, without the overlap, or a
        # burst larger than a page inside the overlap would be asked for again and again.
        self.behind = False

    def since(self) -> datetime:
        if self.behind:
            return self.newest
        return max(self.opened_at, self.newest - OVERLAP)

    def take_new(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        fresh = [i for i in items if i["id"] not in self.sent]
        for item in fresh:
            created = datetime.fromisoformat(item["created_at"])
            self.sent[item["id"]] = created
            self.newest = max(self.newest, created)
        floor = self.newest - 2 * OVERLAP
        self.sent = {k: v for k, v in self.sent.items() if v >= floor}
        return fresh


def sse(item: dict[str, Any]) -> bytes:
    payload = orjson.dumps(item).decode()
    return f"id: {item['id']}\nevent: {item['type']}\ndata: {payload}\n\n".encode()


def sse_error(exc: ApiError) -> bytes:
    payload = orjson.dumps(error_body(exc.code, exc.message, exc.param, exc.kind)).decode()
    return f"event: error\ndata: {payload}\n\n".encode()


@router.get("/api/v1/events/stream")
async def stream_events(request: Request, who: Who) -> StreamingResponse:
    if who.environment != "test":
        raise ApiError(403, "test_key_required", TEST_ONLY)
    if _Streams.open[who.merchant_id] >= MAX_STREAMS_PER_MERCHANT:
        raise ApiError(
            429,
            "too_many_streams",
            f"At most {MAX_STREAMS_PER_MERCHANT} event streams at once; close one first.",
            headers={"Retry-After": "10"},
        )
    service: QueryService = request.app.state.webhooks
    cursor = StreamCursor(utcnow())

    async def page() -> list[dict[str, Any]]:
        data = await service.data(
            WebhooksCommand(
                type="webhooks.stream_events", since=cursor.since(), limit=PAGE,
                **scope(request, who),
            )
        )  # fmt: skip
        cursor.behind = bool(data["has_more"])
        items: list[dict[str, Any]] = data["data"]
        return items

    # Asked once before answering, so a refusal (no endpoint secret...) is a plain ApiError.
    first = await page()

    async def events() -> AsyncIterator[bytes]:
        _Streams.open[who.merchant_id] += 1
        try:
            async for chunk in relay():
                yield chunk
        finally:
            _Streams.open[who.merchant_id] -= 1
            if _Streams.open[who.merchant_id] <= 0:
                del _Streams.open[who.merchant_id]

    async def relay() -> AsyncIterator[bytes]:
        yield b": connected\n\n"
        items, polls = first, 0
        while True:
            for item in cursor.take_new(items):
                yield sse(item)
            polls += 1
            if polls % HEARTBEAT_EVERY == 0:
                yield b": heartbeat\n\n"
            if not cursor.behind:
                await asyncio.sleep(POLL_SECONDS)
            if _Streams.closing or await request.is_disconnected():
                return
            try:
                items = await page()
            except ApiError as exc:
                if exc.status < 500:
                    yield sse_error(exc)
                    return
                items = []  # the dispatcher is briefly unavailable: ask again next second

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
