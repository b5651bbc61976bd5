"""A batch consumer for the hot event queues: many messages per transaction, one ack.

`consumer.subscribe` handles one message per handler call; a service whose effect is a row
per event (the webhook dispatcher, the ledger) pays a statement, a commit and an ack per
message that way. This consumer reads the queue with aio-pika directly, hands the handler
every message already delivered (up to `batch_size`, without waiting for more), and
acknowledges the batch with one `multiple` ack once the handler's transaction committed.
The platform's policy is unchanged:

- a message that does not parse as its contract is rejected at once (dead-lettered);
- a transient failure (database or broker unreachable, serialization conflict) is retried
  for `retry_seconds`;
- any other failure of a batch is narrowed down: each message is handled alone, and the one
  that fails is nacked with requeue, so the quorum queue's `x-delivery-limit` dead-letters
  it while the others go through; one whose handler raises `consumer.DeadLetter` (redelivery
  cannot help) is rejected, dead-lettered at once;
- the handler claims each message's id in the inbox in the same transaction as its effect,
  so a redelivered batch (a crash before the ack) changes nothing twice;
- a handler may return work to finish some messages later (`Late`: a message waiting for
  another that may be behind it in this consumer's buffer): those are acknowledged one by
  one once their work is done (nacked if it fails), the others at once, and the consumer
  reads on meanwhile (no `multiple` ack while any is unsettled).

Messages are handed over in delivery order, so one payment's events keep their order.
Trace context: each message gets its consumer span, parented by its own `traceparent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from pydantic import TypeAdapter, ValidationError

from fluxpay_common.consumer import DeadLetter, last_delivery, retry_transient
from fluxpay_common.logging import get_logger
from fluxpay_common.metrics import DEAD_LETTERED, HANDLER_FAILURES, HANDLER_SECONDS, timed
from fluxpay_common.topology import Route
from fluxpay_common.tracing import current_traceparent, span_from_headers

log = get_logger(__name__)
T = TypeVar("T")
# Each message's consumer span (`traceparent`) by message id, for handlers that store the
# trace with what they write (a webhook event continues its payment's trace when POSTed).
_traceparents: contextvars.ContextVar[dict[Any, str] | None] = contextvars.ContextVar(
    "batch_traceparents", default=None
)


def traceparent_of(message_id: Any) -> str | None:
    """The trace of one message of the batch being handled (None outside a batch)."""
    return (_traceparents.get() or {}).get(message_id)


# What a handler leaves unfinished once its transaction committed: by index in the batch, the
# work that settles that message (it is acknowledged when that work is done, nacked if it
# fails), run without holding up the next batches. An update waiting for its predecessor,
# which may be behind it in this very consumer's buffer, is the case (the orchestrator).
Late = Mapping[int, Callable[[], Awaitable[None]]]
BatchHandler = Callable[[Sequence[T]], Awaitable[Late | None]]


class BatchConsumer(Generic[T]):
    """Run as a supervised loop: a lost connection raises, the supervisor starts it again."""

    def __init__(
        self,
        url: str,
        route: Route,
        adapter: TypeAdapter[T],
        handler: BatchHandler[T],
        *,
        batch_size: int,
        retry_seconds: float,
        delivery_limit: int | None = None,
    ) -> None:
        """`delivery_limit`: the queue's, to count a message the last nack dead-letters
        (`fluxpay_messages_dead_lettered_total`, which pages)."""
        self._url = url
        self._route = route
        self._adapter = adapter
        self._handler = handler
        self._batch_size = batch_size
        self._retry_seconds = retry_seconds
        self._delivery_limit = delivery_limit
        # Messages whose handling goes on after their batch (`Late`), until settled.
        self._late: set[asyncio.Task[None]] = set()
        self._buffer: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()

    @property
    def unsettled(self) -> int:
        """Messages whose late work is still running (not acknowledged yet)."""
        return len(self._late)

    async def run(self) -> None:
        connection = await aio_pika.connect(self._url)
        self._buffer = asyncio.Queue()
        # Messages delivered on a channel that is gone cannot be acknowledged: stop, and let
        # the supervisor reconnect (RabbitMQ redelivers them).
        connection.close_callbacks.add(lambda *_: self._buffer.put_nowait(None))
        try:
            channel = await connection.channel()
            # Twice the batch: the next batch arrives while this one is being written.
            await channel.set_qos(prefetch_count=2 * self._batch_size)
            queue = await channel.get_queue(self._route.queue, ensure=False)
            await queue.consume(self._buffer.put)
            while True:
                await self.handle(await self._next_batch())
        finally:
            with contextlib.suppress(Exception):
                await connection.close()

    async def _next_batch(self) -> list[AbstractIncomingMessage]:
        first = await self._buffer.get()
        batch = [first]
        while len(batch) < self._batch_size and not self._buffer.empty():
            batch.append(self._buffer.get_nowait())
        if None in batch:
            raise ConnectionError(f"connection to the broker lost ({self._route.queue})")
        return batch  # type: ignore[return-value]

    async def handle(self, batch: Sequence[AbstractIncomingMessage]) -> None:
        """Handle and settle every message of `batch` (delivery order)."""
        parsed: list[tuple[AbstractIncomingMessage, T]] = []
        for message in batch:
            value = self._parse(message)
            if value is None:
                DEAD_LETTERED.labels(self._route.queue, "unparseable").inc()
                await message.reject(requeue=False)
            else:
                parsed.append((message, value))
        if not parsed:
            return
        try:
            late = await self._handle_traced(parsed)
        except Exception as exc:
            log.warning(
                "message_batch_failed_handling_one_by_one",
                queue=self._route.queue,
                size=len(parsed),
                error=repr(exc),
            )
            for one in parsed:
                await self._handle_alone(one)
            return
        if not late and not self._late:
            # Every earlier delivery of this channel is settled: one ack covers the batch.
            await parsed[-1][0].ack(multiple=True)
            return
        # A message still being handled must not be covered by a `multiple` ack.
        for i, (message, _) in enumerate(parsed):
            if not late or i not in late:
                await message.ack()
        for i, finish in (late or {}).items():
            self._start_late(parsed[i][0], finish)

    def _start_late(
        self, message: AbstractIncomingMessage, finish: Callable[[], Awaitable[None]]
    ) -> None:
        task = asyncio.create_task(self._settle_late(message, finish))
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def _settle_late(
        self, message: AbstractIncomingMessage, finish: Callable[[], Awaitable[None]]
    ) -> None:
        try:
            await retry_transient(finish, self._retry_seconds, what=self._route.queue)
        except Exception as exc:
            await self._failed(message, exc)
            return
        with contextlib.suppress(Exception):  # a channel gone: the broker redelivers it
            await message.ack()

    def _parse(self, message: AbstractIncomingMessage) -> T | None:
        try:
            return self._adapter.validate_json(message.body)
        except ValidationError as exc:
            log.error(
                "message_rejected_unparseable",
                queue=self._route.queue,
                message_id=message.message_id,
                errors=exc.errors(include_url=False, include_input=False)[:5],
            )
            return None

    async def _handle_traced(
        self, parsed: Sequence[tuple[AbstractIncomingMessage, T]]
    ) -> Late | None:
        traceparents: dict[Any, str] = {}
        with contextlib.ExitStack() as spans:
            for message, value in parsed:
                spans.enter_context(
                    span_from_headers(
                        f"consume {self._route.queue}", message.headers, **_ids(value, message)
                    )
                )
                traceparent = current_traceparent()
                if traceparent is not None:
                    traceparents[getattr(value, "message_id", None)] = traceparent
            _traceparents.set(traceparents)
            # One observation per handler call: a batch here, a message on `consumer.subscribe`.
            with timed(HANDLER_SECONDS, queue=self._route.queue):
                return await retry_transient(
                    lambda: self._handler([value for _, value in parsed]),
                    self._retry_seconds,
                    what=self._route.queue,
                )

    async def _handle_alone(self, one: tuple[AbstractIncomingMessage, T]) -> None:
        message, _ = one
        try:
            late = await self._handle_traced([one])
        except DeadLetter as exc:
            HANDLER_FAILURES.labels(self._route.queue).inc()
            DEAD_LETTERED.labels(self._route.queue, "handler_failed").inc()
            log.error(
                "message_dead_lettered",
                queue=self._route.queue,
                message_id=message.message_id,
                reason=str(exc),
            )
            await message.reject(requeue=False)
            return
        except Exception as exc:
            await self._failed(message, exc)
            return
        if late:
            self._start_late(message, late[0])
            return
        await message.ack()

    async def _failed(self, message: AbstractIncomingMessage, exc: Exception) -> None:
        # Nacked: redelivered until the queue's delivery limit dead-letters it.
        HANDLER_FAILURES.labels(self._route.queue).inc()
        limit = self._delivery_limit
        if limit is not None and last_delivery(message.headers, limit):
            DEAD_LETTERED.labels(self._route.queue, "handler_failed").inc()
        log.error(
            "message_handler_failed",
            queue=self._route.queue,
            message_id=message.message_id,
            redelivered=message.redelivered,
            error=repr(exc),
            exc_info=exc,
        )
        with contextlib.suppress(Exception):  # a channel gone: the broker redelivers it
            await message.nack(requeue=True)


def _ids(value: Any, message: AbstractIncomingMessage) -> dict[str, Any]:
    return {
        "message_id": getattr(value, "message_id", None),
        "correlation_id": getattr(value, "correlation_id", None) or message.correlation_id,
        "payment_id": getattr(value, "payment_id", None),
    }
