"""The orchestrator's view of a day, asked through its door: what the books should hold.

The ledger never reads the orchestrator's schema: it sends a `SettledMovementsQuery`
(request/reply on the orchestrator's queue) and the orchestrator answers with the payments
it collected and the refunds it paid out, amounts in minor units, each with the instant
money moved (`completed_at`). A payment later refunded in full was still collected.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import TypeAdapter

from fluxpay_common.messages import QueryReply, SettledMovement, SettledMovementsQuery
from fluxpay_common.rpc import RpcClient, RpcUnavailable
from fluxpay_common.topology import COMMANDS, ORCHESTRATOR_COMMANDS_KEY
from ledger.domain.books import EntryKind
from ledger.domain.reconciliation import DayFilter, Movement, MovementKey, split_keys

_MOVEMENTS: TypeAdapter[list[SettledMovement]] = TypeAdapter(list[SettledMovement])


class OrchestratorDoor:
    """`service_layer.ports.OrchestratorDay` over RabbitMQ request/reply."""

    def __init__(self, rabbitmq_url: str, timeout: float) -> None:
        self._client = RpcClient(rabbitmq_url, COMMANDS.name, ORCHESTRATOR_COMMANDS_KEY)
        self._timeout = timeout

    async def start(self) -> None:
        await self._client.start()

    async def stop(self) -> None:
        await self._client.stop()

    async def expected_movements(self, day: DayFilter) -> list[Movement]:
        """The payments collected and the refunds paid out that day, per the orchestrator."""
        query = SettledMovementsQuery(
            start=day.start,
            end=day.end,
            provider=day.provider,
            environment=day.environment,  # type: ignore[arg-type]
            merchant_id=day.merchant_id,
        )
        return [movement(m) for m in await self._ask(query)]

    async def settled(
        self, keys: Iterable[MovementKey]
    ) -> dict[MovementKey, tuple[Movement, datetime]]:
        """These payments and refunds as the orchestrator settled them, wherever they fell."""
        payments, refunds = split_keys(keys)
        if not payments and not refunds:
            return {}
        found = await self._ask(SettledMovementsQuery(payment_ids=payments, refund_ids=refunds))
        return {(m := movement(s)).key: (m, s.completed_at) for s in found}

    async def _ask(self, query: SettledMovementsQuery) -> list[SettledMovement]:
        reply: QueryReply = await self._client.call(query, QueryReply, self._timeout)
        if reply.error is not None:
            raise RpcUnavailable(f"the orchestrator refused: {reply.error.message}")
        return _MOVEMENTS.validate_python(reply.data["movements"])


def movement(settled: SettledMovement) -> Movement:
    return Movement(
        kind=EntryKind(settled.kind),
        payment_id=settled.payment_id,
        refund_id=settled.refund_id,
        environment=settled.environment,
        currency=settled.currency,
        amount_minor=settled.amount_minor,
        # A refund carries no PSP fee to compare.
        psp_fee_minor=settled.psp_fee_minor if settled.kind == "payment" else None,
    )
