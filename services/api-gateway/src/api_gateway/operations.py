"""Operator commands on the broker and the services' own doors: `inspect`, `dlq list`,
`dlq redrive`, `backlog`. They read RabbitMQ over AMQP (no management plugin needed), ask
each service over its request/reply queue and read each service's `/metrics`, never
another service's schema.

- `inspect LOOKUP` asks the orchestrator for the payments LOOKUP names (id, reference or
  PSP reference), then for each the connector (attempts, refunds, callbacks), the ledger
  (journal entries, holds) and the dispatcher (events, deliveries, attempts). A service
  that does not answer in time is reported as such; the others still are.

- `dlq list` takes the dead letters with basic.get and closes the channel without
  acknowledging them: RabbitMQ puts every one back. OTPs and secrets in bodies are redacted.
- `dlq redrive` publishes each dead letter again (publisher confirms) to the exchange and
  routing key it was first published with (its `x-death` record), then acknowledges it: a
  fresh message, so its delivery count starts again. A dead letter whose origin is unknown
  stays where it is.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from typing import Any

import aio_pika
import httpx
import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from prometheus_client.parser import text_string_to_metric_families

from fluxpay_common.messages import (
    ConnectorInspect,
    InspectPayment,
    LedgerInspect,
    Message,
    QueryReply,
    WebhooksInspect,
)
from fluxpay_common.rpc import RpcClient, RpcTimeout, RpcUnavailable
from fluxpay_common.topology import (
    COMMANDS,
    DEFAULT_PROVIDERS,
    LEDGER_QUERIES_KEY,
    ORCHESTRATOR_COMMANDS_KEY,
    WEBHOOK_COMMANDS_KEY,
    all_routes,
    connector_key,
)

_REDACTED_KEYS = frozenset({"otp", "secret", "webhook_secret", "api_key", "password"})
# Keep the list readable: a dead letter's body is cut here.
BODY_EXCERPT_CHARS = 2000


def add_operation_commands(commands: Any) -> None:
    inspect = commands.add_parser(
        "inspect",
        help="a payment by id, reference or PSP reference: transitions, attempts, events,"
        " deliveries, ledger entries (asked of each service)",
    )
    inspect.add_argument(
        "lookup", type=_lookup, help="payment id, merchant reference or PSP reference"
    )
    inspect.add_argument(
        "--timeout", type=_positive(float), default=10.0, help="per service (seconds)"
    )
    dlq = commands.add_parser("dlq", help="dead-lettered messages: list or re-drive them")
    actions = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = actions.add_parser("list", help="the dead letters of every queue (or one)")
    listing.add_argument("--queue", default=None, help="e.g. orchestrator.provider-updates")
    listing.add_argument("--limit", type=_positive(int), default=50, help="per queue (default 50)")
    redrive = actions.add_parser(
        "redrive", help="publish dead letters again to their original exchange and key"
    )
    redrive.add_argument("--queue", required=True, help="the queue whose DLQ to empty")
    redrive.add_argument("--message-id", default=None, help="only this message")
    redrive.add_argument("--limit", type=_positive(int), default=1000)
    backlog = commands.add_parser(
        "backlog", help="queue depths (and DLQs); outbox rows of the services given --metrics"
    )
    backlog.add_argument(
        "--metrics",
        action="append",
        default=[],
        metavar="URL",
        help="a service's /metrics URL (repeatable): its outbox backlog and oldest row's age",
    )


def _positive(kind: Any) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def _lookup(text: str) -> str:
    if not 1 <= len(text.strip()) <= 200:
        raise argparse.ArgumentTypeError("a payment id, reference or PSP reference (1-200 chars)")
    return text.strip()


OPERATIONS = frozenset({"dlq", "backlog", "inspect"})


def run_operation(args: argparse.Namespace, rabbitmq_url: str) -> dict[str, Any]:
    if args.command == "inspect":
        return asyncio.run(inspect_payment(rabbitmq_url, args.lookup, args.timeout))
    if args.command == "backlog":
        return asyncio.run(backlog(rabbitmq_url, args.metrics))
    if args.dlq_command == "list":
        return asyncio.run(dlq_list(rabbitmq_url, args.queue, args.limit))
    return asyncio.run(dlq_redrive(rabbitmq_url, args.queue, args.message_id, args.limit))


def _queues(only: str | None = None) -> list[str]:
    names = [route.queue for route in all_routes(DEFAULT_PROVIDERS)]
    if only is not None:
        if only not in names:
            raise SystemExit(f"unknown queue {only!r}; known: {', '.join(names)}")
        return [only]
    return names


async def _depth(channel: AbstractChannel, name: str) -> dict[str, int] | None:
    try:
        queue = await channel.declare_queue(name, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        return None  # not declared yet (no service started): reopened by the caller
    result = queue.declaration_result
    return {"messages": result.message_count, "consumers": result.consumer_count}


async def queue_depths(rabbitmq_url: str) -> dict[str, Any]:
    depths: dict[str, Any] = {}
    async with await aio_pika.connect(rabbitmq_url) as connection:
        for name in _queues():
            entry: dict[str, Any] = {}
            for label, queue in (("queue", name), ("dlq", f"{name}.dlq")):
                channel = await connection.channel()
                found = await _depth(channel, queue)
                entry[label] = found if found is not None else "absent"
                if not channel.is_closed:
                    await channel.close()
            depths[name] = entry
    return depths


def _outbox_of(metrics_text: str) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            field = {
                "fluxpay_outbox_backlog": "rows",
                "fluxpay_outbox_oldest_age_seconds": "oldest_age_seconds",
            }.get(sample.name)
            if field is not None:
                service = sample.labels.get("service", "")
                rows.setdefault(service, {"service": service})[field] = sample.value
    return list(rows.values())


async def backlog(rabbitmq_url: str, metrics_urls: list[str]) -> dict[str, Any]:
    outbox: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=5) as client:
        for url in metrics_urls:
            try:
                response = await client.get(url)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                outbox.append({"metrics": url, "error": repr(exc)})
                continue
            outbox += [{"metrics": url, **row} for row in _outbox_of(response.text)]
    return {"queues": await queue_depths(rabbitmq_url), "outbox": outbox}


def _origin(message: AbstractIncomingMessage) -> tuple[str, str] | None:
    """The exchange and routing key the message was first published to (`x-death`)."""
    deaths = (message.headers or {}).get("x-death") or []
    if not deaths:
        return None
    first = deaths[-1]  # the oldest death is last
    keys = first.get("routing-keys") or []
    exchange = first.get("exchange")
    if exchange is None or not keys:
        return None
    return _text(exchange), _text(keys[0])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "[redacted]" if k in _REDACTED_KEYS else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _described(queue: str, message: AbstractIncomingMessage) -> dict[str, Any]:
    origin = _origin(message)
    deaths = (message.headers or {}).get("x-death") or []
    try:
        body: Any = _redact(orjson.loads(message.body))
    except orjson.JSONDecodeError:
        body = message.body[:BODY_EXCERPT_CHARS].decode(errors="replace")
    return {
        "queue": queue,
        "message_id": message.message_id,
        "type": _text((message.headers or {}).get("x-message-type", "")),
        "reason": _text(deaths[0].get("reason", "")) if deaths else None,
        "exchange": origin[0] if origin else None,
        "routing_key": origin[1] if origin else None,
        "payment_id": body.get("payment_id") if isinstance(body, dict) else None,
        "body": body,
    }


async def _take(channel: AbstractChannel, dlq: str, limit: int) -> list[AbstractIncomingMessage]:
    try:
        queue = await channel.declare_queue(dlq, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        return []
    taken: list[AbstractIncomingMessage] = []
    while len(taken) < limit:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        taken.append(message)
    return taken


async def dlq_list(rabbitmq_url: str, only: str | None, limit: int) -> dict[str, Any]:
    letters: list[dict[str, Any]] = []
    async with await aio_pika.connect(rabbitmq_url) as connection:
        for name in _queues(only):
            # Closing the channel unacknowledged returns every message taken to its DLQ.
            channel = await connection.channel()
            letters += [_described(name, m) for m in await _take(channel, f"{name}.dlq", limit)]
            if not channel.is_closed:
                await channel.close()
    return {"dead_letters": letters, "count": len(letters)}


async def dlq_redrive(
    rabbitmq_url: str, queue: str, message_id: str | None, limit: int
) -> dict[str, Any]:
    _queues(queue)
    redriven: list[str | None] = []
    kept: list[dict[str, Any]] = []
    async with await aio_pika.connect(rabbitmq_url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        for message in await _take(channel, f"{queue}.dlq", limit):
            origin = _origin(message)
            if (message_id is not None and message.message_id != message_id) or origin is None:
                if origin is None:
                    kept.append({"message_id": message.message_id, "why": "origin unknown"})
                continue  # left unacknowledged: back to the DLQ when the channel closes
            exchange = await channel.get_exchange(origin[0], ensure=False)
            await exchange.publish(_again(message), routing_key=origin[1], mandatory=True)
            await message.ack()
            redriven.append(message.message_id)
        await channel.close()
    return {"queue": queue, "redriven": redriven, "count": len(redriven), "kept": kept}


def _again(message: AbstractIncomingMessage) -> aio_pika.Message:
    headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-death")}
    headers = {k: v for k, v in headers.items() if not k.startswith("x-first-death")}
    headers = {k: v for k, v in headers.items() if not k.startswith("x-last-death")}
    headers.pop("x-delivery-count", None)
    headers["x-redriven"] = True
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        message_id=message.message_id,
        type=message.type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def _ask(rabbitmq_url: str, key: str, request: Message, timeout: float) -> Any:
    """A service's answer through its request/reply door, or what went wrong."""
    client = RpcClient(rabbitmq_url, COMMANDS.name, key)
    try:
        await client.start()
        reply: QueryReply = await client.call(request, QueryReply, timeout)
    except RpcTimeout:
        return {"error": f"{key} did not answer within {timeout:g}s"}
    except RpcUnavailable as exc:
        return {"error": f"broker unavailable: {exc}"}
    finally:
        await client.stop()
    if reply.error is not None:
        return {"error": reply.error.model_dump(exclude_none=True)}
    return reply.data


async def inspect_payment(rabbitmq_url: str, lookup: str, timeout: float) -> dict[str, Any]:
    found = await _ask(
        rabbitmq_url, ORCHESTRATOR_COMMANDS_KEY, InspectPayment(lookup=lookup), timeout
    )
    if "error" in found:
        return {"lookup": lookup, "error": found["error"]}
    payments = []
    for payment in found["payments"]:
        payment_id = uuid.UUID(payment["id"])
        asks = {
            "ledger": _ask(
                rabbitmq_url, LEDGER_QUERIES_KEY, LedgerInspect(payment_id=payment_id), timeout
            ),
            "webhooks": _ask(
                rabbitmq_url, WEBHOOK_COMMANDS_KEY, WebhooksInspect(payment_id=payment_id), timeout
            ),
        }
        if payment.get("provider"):
            asks["connector"] = _ask(
                rabbitmq_url,
                connector_key(payment["provider"]),
                ConnectorInspect(payment_id=payment_id),
                timeout,
            )
        answers = dict(zip(asks, await asyncio.gather(*asks.values()), strict=True))
        transitions = payment.pop("transitions", None) or []
        refunds = payment.pop("refunds", None) or []
        payments.append(
            {"payment": payment, "transitions": transitions, "refunds": refunds, **answers}
        )
    return {"lookup": lookup, "count": len(payments), "payments": payments}
