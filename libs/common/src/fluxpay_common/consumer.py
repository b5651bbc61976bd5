"""How every service consumes: parse, retry transient failures, then nack to the DLQ.

Ack policy, chosen deliberately:
- a message that does not parse as its contract is rejected at once: RabbitMQ dead-letters
  it to `<queue>.dlq` (nothing is dropped silently);
- a transient failure (database or broker unreachable, serialization conflict) is retried
  in process with backoff for `handler_retry_seconds`;
- any other failure nacks with requeue; the quorum queue's `x-delivery-limit` then
  dead-letters a message that keeps failing, so a poison message cannot loop forever;
- success acks after the handler's transaction committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from faststream import AckPolicy
from faststream.exceptions import RejectMessage
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from pydantic import BaseModel, TypeAdapter, ValidationError

from fluxpay_common.logging import bound_context, get_logger
from fluxpay_common.messages import ErrorBody
from fluxpay_common.metrics import DEAD_LETTERED, HANDLER_FAILURES, HANDLER_SECONDS, timed
from fluxpay_common.rpc import DEADLINE_HEADER
from fluxpay_common.topology import Route
from fluxpay_common.tracing import span_from_headers

log = get_logger(__name__)
T = TypeVar("T")
Handler = Callable[[T, RabbitMessage], Awaitable[BaseModel | None]]

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


def _past_deadline(msg: RabbitMessage) -> bool:
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
    broker: RabbitBroker,
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

    async def on_message(msg: RabbitMessage) -> None:
        try:
            parsed = adapter.validate_json(msg.body)
        except ValidationError as exc:
            log.error(
                "message_rejected_unparseable",
                queue=route.queue,
                message_id=msg.message_id,
                errors=exc.errors(include_url=False, include_input=False)[:5],
            )
            DEAD_LETTERED.labels(route.queue, "unparseable").inc()
            raise RejectMessage() from exc
        if msg.reply_to and _past_deadline(msg):
            # The caller gave up (it answered the merchant 503): doing the work now would
            # answer nobody. Acknowledged and logged, not dead-lettered: nothing failed.
            log.info("request_expired_skipped", queue=route.queue, message_id=msg.message_id)
            return
        ids = {
            "message_id": getattr(parsed, "message_id", None),
            "correlation_id": getattr(parsed, "correlation_id", None) or msg.correlation_id,
            "payment_id": getattr(parsed, "payment_id", None),
        }
        with (
            bound_context(**ids),
            span_from_headers(f"consume {route.queue}", msg.headers, **ids),
            timed(HANDLER_SECONDS, queue=route.queue),
        ):
            try:
                reply = await retry_transient(
                    lambda: handler(parsed, msg), retry_seconds, what=route.queue
                )
            except Exception as exc:
                # Nacked: redelivered until the queue's delivery limit dead-letters it.
                log.error(
                    "message_handler_failed",
                    queue=route.queue,
                    redelivered=msg.raw_message.redelivered,
                    error=repr(exc),
                    exc_info=True,
                )
                HANDLER_FAILURES.labels(route.queue).inc()
                if msg.reply_to or _last_delivery(msg, delivery_limit):
                    DEAD_LETTERED.labels(route.queue, "handler_failed").inc()
                if msg.reply_to:
                    # A caller is waiting: tell it now, and keep the request in the DLQ.
                    await send_reply(broker, msg, _INTERNAL_ERROR)
                    raise RejectMessage() from exc
                raise
            if msg.reply_to:
                if reply is None:
                    # Silence would hold the caller until its timeout: say so at once.
                    log.error("request_left_unanswered", queue=route.queue)
                    reply = _NO_ANSWER
                await send_reply(broker, msg, reply)

    broker.subscriber(
        route.rabbit_queue(delivery_limit),
        route.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        no_reply=True,
        decoder=_message_itself,
    )(on_message)


def _last_delivery(msg: RabbitMessage, delivery_limit: int) -> bool:
    """A nack now makes the quorum queue dead-letter the message: returned more times than
    its `x-delivery-limit` (`x-delivery-count` counts the returns so far)."""
    count = (msg.headers or {}).get("x-delivery-count") or 0
    try:
        return int(count) + 1 > delivery_limit
    except (TypeError, ValueError):
        return False


async def _message_itself(msg: RabbitMessage) -> RabbitMessage:
    """The handler parses the body with its own adapter: FastStream need not decode it."""
    return msg


async def send_reply(broker: RabbitBroker, msg: RabbitMessage, reply: BaseModel) -> None:
    """Answer a request; a requester that has gone away is logged, not retried."""
    try:
        await broker.publish(
            reply.model_dump_json().encode(),
            routing_key=msg.reply_to,
            correlation_id=msg.correlation_id,
            content_type="application/json",
            mandatory=False,
        )
    except Exception as exc:
        log.warning("reply_not_delivered", error=repr(exc))
