"""The one place where the orchestrator's dependencies are wired from its settings."""

from __future__ import annotations

import asyncpg

from fluxpay_common.outbox import OutboxRelay
from payment_orchestrator.adapters.postgres import postgres_unit_of_work
from payment_orchestrator.adapters.rpc import RpcClients
from payment_orchestrator.config import Settings
from payment_orchestrator.service_layer.handlers import Dependencies, Policy


def rpc_clients(settings: Settings) -> RpcClients:
    return RpcClients(settings.rabbitmq_url.get_secret_value(), settings.connector_rpc_timeout)


def policy(settings: Settings) -> Policy:
    return Policy(
        routes=settings.routes,
        checkout_base_url=settings.checkout_base_url,
        fees=settings.ledger_fees,
        expiry_time_scale=settings.expiry_time_scale,
    )


def dependencies(
    pool: asyncpg.Pool, settings: Settings, clients: RpcClients, relay: OutboxRelay | None = None
) -> Dependencies:
    return Dependencies(
        open_uow=postgres_unit_of_work(pool, relay),
        call_connector=clients.call_connector,
        reserve_refund=clients.reserve_refund,
        policy=policy(settings),
    )
