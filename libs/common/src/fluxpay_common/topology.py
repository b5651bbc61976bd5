"""The RabbitMQ topology, declared in one place and by every service at start-up.

Three exchanges: `fluxpay.commands` (direct), `fluxpay.events` (topic, domain events),
`fluxpay.provider` (topic, normalized PSP updates). One durable quorum queue per consumer
role, each with a delivery limit and its own dead-letter queue behind `fluxpay.dead-letter`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue

COMMANDS = RabbitExchange("fluxpay.commands", type=ExchangeType.DIRECT, durable=True)
EVENTS = RabbitExchange("fluxpay.events", type=ExchangeType.TOPIC, durable=True)
PROVIDER = RabbitExchange("fluxpay.provider", type=ExchangeType.TOPIC, durable=True)
DEAD_LETTER = RabbitExchange("fluxpay.dead-letter", type=ExchangeType.DIRECT, durable=True)

ORCHESTRATOR_COMMANDS_KEY = "orchestrator"
LEDGER_QUERIES_KEY = "ledger"
WEBHOOK_COMMANDS_KEY = "webhooks"
DEFAULT_PROVIDERS = ("sandbox", "novasend", "irembopay", "mtn_momo", "stripe")


def connector_key(provider: str) -> str:
    return f"connector.{provider}"


def provider_update_key(provider: str, status: str) -> str:
    return f"provider.{provider}.{status}"


@dataclass(frozen=True)
class Route:
    """A consumer role: its queue, the exchange feeding it and the binding keys."""

    queue: str
    exchange: RabbitExchange
    binding_keys: tuple[str, ...]
    # Keys an earlier release bound: unbound at start-up so a running system converges.
    retired_keys: tuple[str, ...] = ()

    def rabbit_queue(self, delivery_limit: int, binding_key: str | None = None) -> RabbitQueue:
        return RabbitQueue(
            self.queue,
            queue_type=QueueType.QUORUM,
            durable=True,
            routing_key=binding_key or self.binding_keys[0],
            arguments={
                "x-delivery-limit": delivery_limit,
                "x-dead-letter-exchange": DEAD_LETTER.name,
                "x-dead-letter-routing-key": self.queue,
            },
        )

    def dead_letter_queue(self) -> RabbitQueue:
        return RabbitQueue(
            f"{self.queue}.dlq",
            queue_type=QueueType.QUORUM,
            durable=True,
            routing_key=self.queue,
        )


ORCHESTRATOR_COMMANDS = Route("orchestrator.commands", COMMANDS, (ORCHESTRATOR_COMMANDS_KEY,))
ORCHESTRATOR_PROVIDER_UPDATES = Route("orchestrator.provider-updates", PROVIDER, ("provider.#",))
# The ledger hears only the events that move money or end a refund's hold: every other
# event would cost it a delivery and a transaction to decide there is nothing to book.
LEDGER_EVENTS = Route(
    "ledger.events",
    EVENTS,
    ("collect.payment.completed", "collect.refund.completed", "collect.refund.failed"),
    retired_keys=("collect.#",),
)
WEBHOOK_EVENTS = Route("webhooks.events", EVENTS, ("collect.#", "merchant.#"))
# The metadata the gateway writes on the payments it starts for a merchant: a payment
# link's use, a due. Only those payments' outcomes are routed to the gateway.
PAYMENT_LINK_USE_KEY = "payment_link_use_id"
DUE_KEY = "due_id"
GATEWAY_METADATA_KEYS = (PAYMENT_LINK_USE_KEY, DUE_KEY)
GATEWAY_OUTCOMES = ("completed", "failed", "cancelled", "expired")


def gateway_payment_key(outcome: str) -> str:
    """The routing key of a gateway payment's outcome (a copy of its `collect.payment.*`)."""
    return f"gateway.payment.{outcome}"


def is_gateway_payment(metadata: Mapping[str, Any] | None) -> bool:
    return any((metadata or {}).get(key) is not None for key in GATEWAY_METADATA_KEYS)


# The gateway hears how its payments end (a payment link's use counted or given back, a due
# paid) on keys of their own: the orchestrator publishes a copy of the outcome there for those
# payments only, so the gateway is not handed every payment of the platform to skip.
GATEWAY_EVENTS = Route(
    "gateway.events",
    EVENTS,
    ("gateway.payment.*",),
    retired_keys=tuple(f"collect.payment.{outcome}" for outcome in GATEWAY_OUTCOMES),
)
# Merchant reads served by the services that own the data (request/reply from the gateway).
LEDGER_QUERIES = Route("ledger.queries", COMMANDS, (LEDGER_QUERIES_KEY,))
WEBHOOK_COMMANDS = Route("webhooks.commands", COMMANDS, (WEBHOOK_COMMANDS_KEY,))


def connector_route(provider: str) -> Route:
    return Route(connector_key(provider), COMMANDS, (connector_key(provider),))


def all_routes(providers: Iterable[str] = DEFAULT_PROVIDERS) -> list[Route]:
    return [
        ORCHESTRATOR_COMMANDS,
        ORCHESTRATOR_PROVIDER_UPDATES,
        LEDGER_EVENTS,
        WEBHOOK_EVENTS,
        GATEWAY_EVENTS,
        LEDGER_QUERIES,
        WEBHOOK_COMMANDS,
        *(connector_route(p) for p in providers),
    ]


async def declare_topology(
    broker: RabbitBroker, delivery_limit: int, providers: Iterable[str] = DEFAULT_PROVIDERS
) -> None:
    """Declare every exchange, queue, binding and dead-letter queue (idempotent).

    Every service declares the whole topology, so a message published before its consumer
    ever started is routed to a durable queue rather than returned or lost.
    """
    for exchange in (COMMANDS, EVENTS, PROVIDER, DEAD_LETTER):
        await broker.declare_exchange(exchange)
    dead_letter = await broker.declare_exchange(DEAD_LETTER)
    for route in all_routes(providers):
        exchange = await broker.declare_exchange(route.exchange)
        queue = await broker.declare_queue(route.rabbit_queue(delivery_limit))
        for key in route.binding_keys:
            await queue.bind(exchange, routing_key=key)
        for key in route.retired_keys:
            await queue.unbind(exchange, routing_key=key)
        dlq = await broker.declare_queue(route.dead_letter_queue())
        await dlq.bind(dead_letter, routing_key=route.queue)
