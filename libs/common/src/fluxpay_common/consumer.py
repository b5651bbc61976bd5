"""How every service consumes: parse, retry transient failures, then nack to the DLQ.

Ack policy, chosen deliberately:
- a message that does not parse as its contract is rejected at once: RabbitMQ dead-letters
  it to `<queue>.dlq` (nothing is dropped silently);
- a transient failure (database or broker unreachable, serialization conflict) is retried
  in process with backoff for `handler_retry_seconds`;
- any other failure nacks with requeue; the quorum queue's `x-delivery-limit` then
  dead-letters a message that keeps failing, so a poison message cannot loop forever;
- success acks after the handler's transaction committed (and after the reply, if any).

Messages arrive through `consumers.Consumers` (aio-pika directly, no FastStream); a handler
gets the parsed contract and the delivery (`consumers.Delivery`: headers, message_id,
correlation_id, reply_to, redelivered, body).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

import aiormq
import asyncpg
from pydantic import BaseModel, TypeAdapter, ValidationError

from fluxpay_common.consumers import Consumers, Delivery
from fluxpay_common.logging import bound_context, get_logger
from fluxpay_common.messages import ErrorBody
from fluxpay_common.metrics import DEAD_LETTERED, HANDLER_FAILURES, HANDLER_SECONDS, timed
from fluxpay_common.rpc import DEADLINE_HEADER
from fluxpay_common.topology import Route
from fluxpay_common.tracing import span_from_headers

log = get_logger(__name__)
T = TypeVar("T")
Handler = Callable[[T, Delivery], Awaitable[BaseModel | None]]
Settle = Callable[[], Awaitable[None]]


class DeadLetter(Exception):
    """Raised by a handler for a message redelivery cannot help: dead-lettered at once."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.AdminShutdownError,
    # A connection that broke mid-operation (a database restart) reports this.
    asyncpg.exceptions._base.InternalClientError,
    TimeoutError,
)


async def retry_transient(
    operation: Callable[[], Awaitable[T]], budget_seconds: float, what: str = "handler"
) -> T:
    """Run `operation`, retrying transient infrastructure errors with capped backoff."""
    deadline = time.monotonic() + budget_seconds
    delay = 0.1
    while True:
        try:
            return await operation()
        except TRANSIENT_ERRORS as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("transient_failure_retrying", what=what, error=repr(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _past_deadline(msg: Delivery) -> bool:
    deadline = (msg.headers or {}).get(DEADLINE_HEADER)
    try:
        return deadline is not None and float(deadline) < time.time()
    except (TypeError, ValueError):
        return False


class _ErrorReply(BaseModel):
    """Parses as any reply type of the platform (`Reply`, `QueryReply`): only `error` set."""

    error: ErrorBody


_INTERNAL_ERROR = _ErrorReply(
    error=ErrorBody(
        status=500,
        type="api_error",
        code="internal_error",
        message="Something went wrong on our side; the request was not applied. Retry later.",
    )
)

_NO_ANSWER = _ErrorReply(
    error=ErrorBody(
        status=503,
        type="api_error",
        code="service_unavailable",
        message="The service had no answer to this request; retry.",
    )
)


def subscribe(
    consumers: Consumers,
    route: Route,
    adapter: TypeAdapter[T],
    handler: Handler[T],
    *,
    delivery_limit: int,
    retry_seconds: float,
) -> None:
    """Register `handler` on the route's queue with the platform's ack policy.

    A handler may return a model: it is sent as the reply when the message asked for one;
    a request its handler answers with nothing gets `service_unavailable`, never silence.
    """
    policy = _Policy(route, adapter, handler, delivery_limit, retry_seconds)
    consumers.add(route.queue, policy.on_message)


class _Policy(Generic[T]):
    """Parse, skip the expired, handle, reply, then settle one message."""

    def __init__(
        self,
        route: Route,
        adapter: TypeAdapter[T],
        handler: Handler[T],
        delivery_limit: int,
        retry_seconds: float,
    ) -> None:
        self.queue = route.queue
        self.adapter, self.handler = adapter, handler
        self.delivery_limit, self.retry_seconds = delivery_limit, retry_seconds

    async def on_message(self, msg: Delivery) -> None:
        try:
            parsed = self.adapter.validate_json(msg.body)
        except ValidationError as exc:
            log.error(
                "message_rejected_unparseable",
                queue=self.queue,
                message_id=msg.message_id,
                errors=exc.errors(include_url=False, include_input=False)[:5],
            )
            DEAD_LETTERED.labels(self.queue, "unparseable").inc()
            await _settle(msg.reject)
            return
        if msg.reply_to and _past_deadline(msg):
            # The caller gave up (it answered the merchant 503): doing the work now would
            # answer nobody. Acknowledged and logged, not dead-lettered: nothing failed.
            log.info("request_expired_skipped", queue=self.queue, message_id=msg.message_id)
            await _settle(msg.ack)
            return
        ids = {
            "message_id": getattr(parsed, "message_id", None),
            "correlation_id": getattr(parsed, "correlation_id", None) or msg.correlation_id,
            "payment_id": getattr(parsed, "payment_id", None),
        }
        with (
            bound_context(**ids),
            span_from_headers(f"consume {self.queue}", msg.headers, **ids),
            timed(HANDLER_SECONDS, queue=self.queue),
        ):
            settle = await self._handle(parsed, msg)
        await _settle(settle)

    async def _handle(self, parsed: T, msg: Delivery) -> Settle:
        """Run the handler and send the reply; return how the message is settled."""
        try:
            reply = await retry_transient(
                lambda: self.handler(parsed, msg), self.retry_seconds, what=self.queue
            )
        except Exception as exc:
            return await self._failed(msg, exc)
        if msg.reply_to:
            if reply is None:
                # Silence would hold the caller until its timeout: say so at once.
                log.error("request_left_unanswered", queue=self.queue)
                reply = _NO_ANSWER
            await send_reply(msg, reply)
        return msg.ack

    async def _failed(self, msg: Delivery, exc: Exception) -> Settle:
        HANDLER_FAILURES.labels(self.queue).inc()
        if isinstance(exc, DeadLetter):
            log.error("message_dead_lettered", queue=self.queue, reason=str(exc))
        else:
            # Nacked: redelivered until the queue's delivery limit dead-letters it.
            log.error(
                "message_handler_failed",
                queue=self.queue,
                redelivered=msg.redelivered,
                error=repr(exc),
                exc_info=exc,
            )
        now = isinstance(exc, DeadLetter) or bool(msg.reply_to)
        if now or _last_delivery(msg, self.delivery_limit):
            DEAD_LETTERED.labels(self.queue, "handler_failed").inc()
        if msg.reply_to:
            # A caller is waiting: tell it now, and keep the request in the DLQ.
            await send_reply(msg, _INTERNAL_ERROR)
        # reject: dead-lettered now; nack: requeued (until the delivery limit).
        return msg.reject if now else msg.nack


async def _settle(settle: Settle) -> None:
    """Ack, nack or reject; on a channel that is gone the broker redelivers the message."""
    try:
        await settle()
    except Exception as exc:
        log.warning("message_not_settled", error=repr(exc))


def _last_delivery(msg: Delivery, delivery_limit: int) -> bool:
    return last_delivery(msg.headers, delivery_limit)


def last_delivery(headers: Mapping[str, Any] | None, delivery_limit: int) -> bool:
    """A nack now makes the quorum queue dead-letter the message: returned more times than
    its `x-delivery-limit` (`x-delivery-count` counts the returns so far)."""
    count = (headers or {}).get("x-delivery-count") or 0
    try:
        return int(count) + 1 > delivery_limit
    except (TypeError, ValueError):
        return False


async def send_reply(msg: Delivery, reply: BaseModel) -> None:
    """Answer a request on the delivery's channel (RabbitMQ's direct reply-to takes a reply
    from any channel); a requester that has gone away is logged, not retried."""
    try:
        await msg.channel.basic_publish(
            reply.model_dump_json().encode(),
            routing_key=msg.reply_to or "",
            properties=aiormq.spec.Basic.Properties(
                correlation_id=msg.correlation_id, content_type="application/json"
            ),
            mandatory=False,
        )
    except Exception as exc:
        log.warning("reply_not_delivered", error=repr(exc))
