"""The one place where the ledger's dependencies are wired from its settings."""

from __future__ import annotations

import asyncpg

from ledger.adapters.orchestrator import OrchestratorDoor
from ledger.adapters.postgres import postgres_books, postgres_holds
from ledger.config import Settings
from ledger.service_layer.requests import Dependencies


def dependencies(pool: asyncpg.Pool, settings: Settings) -> Dependencies:
    door = OrchestratorDoor(
        settings.rabbitmq_url.get_secret_value(), settings.reconcile_rpc_timeout
    )
    return Dependencies(
        pool=pool,
        open_books=postgres_books(pool),
        open_holds=postgres_holds(pool),
        orchestrator=door,
        fees=settings.ledger_fees,
    )
