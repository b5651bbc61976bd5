"""One handler per request on the ledger's queue (`ledger.queries`); routing by type.

Merchant reads (the gateway), refund holds (the orchestrator), a day's reconciliation (the
operator CLI). A request that asks for an answer gets a `QueryReply`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from fluxpay_common.messages import (
    LedgerInspect,
    LedgerQuery,
    QueryReply,
    ReconcileDay,
    ReleaseRefundHold,
    ReserveRefund,
)
from ledger.adapters.orchestrator import OrchestratorDoor
from ledger.domain.fees import FeeSchedule
from ledger.service_layer.holds import hold_body, release_hold, reserve_refund
from ledger.service_layer.inspection import inspect
from ledger.service_layer.merchant_queries import answer
from ledger.service_layer.ports import OpenBooks, OpenHolds
from ledger.service_layer.reconciliation import reconcile_day
from ledger.service_layer.report import report_body


@dataclass(frozen=True)
class Dependencies:
    pool: asyncpg.Pool
    open_books: OpenBooks
    open_holds: OpenHolds
    orchestrator: OrchestratorDoor
    fees: FeeSchedule


async def on_query(query: LedgerQuery, deps: Dependencies) -> QueryReply:
    return await answer(query, deps.pool)


async def on_reserve_refund(request: ReserveRefund, deps: Dependencies) -> QueryReply:
    return QueryReply(data=hold_body(await reserve_refund(request, deps.open_holds)))


async def on_release_refund_hold(request: ReleaseRefundHold, deps: Dependencies) -> None:
    await release_hold(request, deps.open_holds)


async def on_reconcile_day(request: ReconcileDay, deps: Dependencies) -> QueryReply:
    await deps.orchestrator.start()
    scope = (request.day, request.provider, request.environment, request.merchant_id)
    async with deps.pool.acquire() as conn:
        report = await reconcile_day(conn, deps.orchestrator, *scope)
    return QueryReply(data=report_body(report))


Handler = Callable[[Any, Dependencies], Awaitable[QueryReply | None]]
REQUEST_HANDLERS: dict[type, Handler] = {
    LedgerQuery: on_query,
    ReserveRefund: on_reserve_refund,
    ReleaseRefundHold: on_release_refund_hold,
    ReconcileDay: on_reconcile_day,
    LedgerInspect: lambda request, deps: inspect(request, deps.pool),
}


async def handle_request(request: Any, deps: Dependencies) -> QueryReply | None:
    return await REQUEST_HANDLERS[type(request)](request, deps)
