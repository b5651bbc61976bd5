"""The unit of work in memory, with the database's rules, for the handler tests.

As in PostgreSQL: one payment per (merchant, environment, reference), one inbox row per
message, one refund per (payment, idempotency key); a transaction's writes, outbox
messages included, appear only when it ends without error. Transactions run one at a time,
which is what the row locks guarantee for the payments they touch. The clock is `now`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from faststream.rabbit import RabbitExchange

from fluxpay_common.ids import parse_uuid
from fluxpay_common.messages import Message, SettledMovement, SettledMovementsQuery
from fluxpay_common.money import to_minor
from payment_orchestrator.domain.listing import Cursor, Listing, in_page, payment_matches
from payment_orchestrator.domain.payment import Payment, PaymentChange, Refund
from payment_orchestrator.domain.status import COLLECTED, PaymentStatus, RefundStatus
from payment_orchestrator.service_layer.ports import (
    BatchClaim,
    Outgoing,
    ProviderClaim,
    UnitOfWork,
)


class IntegrityError(Exception):
    """What a unique constraint violation is in the database."""


@dataclass(frozen=True)
class Transition:
    payment_id: uuid.UUID
    from_status: PaymentStatus | None
    to_status: PaymentStatus
    reason: str
    message_id: uuid.UUID | None


@dataclass(frozen=True)
class Published:
    exchange: str
    routing_key: str
    message: Message


@dataclass
class MemoryStore:
    payments: dict[uuid.UUID, Payment] = field(default_factory=dict)
    refunds: dict[uuid.UUID, Refund] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    inbox: set[uuid.UUID] = field(default_factory=set)
    outbox: list[Published] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def open_uow(self, *, transactional: bool = True) -> AbstractAsyncContextManager[UnitOfWork]:
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[UnitOfWork]:
        uow = MemoryUnitOfWork(self)
        yield uow
        self.payments |= uow.payments
        self.refunds |= uow.refunds
        self.transitions += uow.transitions
        self.inbox |= uow.inbox
        self.outbox += uow.outbox

    def published(self, routing_key_prefix: str = "") -> list[Message]:
        return [p.message for p in self.outbox if p.routing_key.startswith(routing_key_prefix)]


@dataclass
class MemoryUnitOfWork(UnitOfWork):
    store: MemoryStore
    payments: dict[uuid.UUID, Payment] = field(default_factory=dict)
    refunds: dict[uuid.UUID, Refund] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    inbox: set[uuid.UUID] = field(default_factory=set)
    outbox: list[Published] = field(default_factory=list)

    def _payments(self) -> dict[uuid.UUID, Payment]:
        return self.store.payments | self.payments

    def _refunds(self) -> dict[uuid.UUID, Refund]:
        return self.store.refunds | self.refunds

    async def find(
        self,
        merchant_id: uuid.UUID,
        environment: str,
        reference_or_id: str,
        *,
        lock: bool = False,
    ) -> Payment | None:
        mine = [
            p
            for p in self._payments().values()
            if p.merchant_id == merchant_id and p.environment == environment
        ]
        by_id = [p for p in mine if p.id == parse_uuid(reference_or_id)]
        by_reference = [p for p in mine if p.reference == reference_or_id]
        found = by_id or by_reference
        return found[0] if found else None

    async def by_reference(
        self, merchant_id: uuid.UUID, environment: str, reference: str
    ) -> Payment | None:
        return next(
            (
                p
                for p in self._payments().values()
                if (p.merchant_id, p.environment, p.reference)
                == (merchant_id, environment, reference)
            ),
            None,
        )

    def now(self) -> datetime:
        return self.store.now

    async def add(
        self, payment: Payment, message_id: uuid.UUID | None, messages: Sequence[Outgoing] = ()
    ) -> Payment | None:
        if await self.by_reference(payment.merchant_id, payment.environment, payment.reference):
            return None
        self.payments[payment.id] = payment
        self.transitions.append(Transition(payment.id, None, payment.status, "created", message_id))
        for exchange, routing_key, message in messages:
            await self.publish(exchange, routing_key, message)
        return payment

    async def claim_and_lock(
        self,
        payment_id: uuid.UUID,
        message_id: uuid.UUID,
        consumer: str,
        predecessor: uuid.UUID | None = None,
    ) -> ProviderClaim:
        payment = self._payments().get(payment_id)
        if payment is None:
            return ProviderClaim(None, first_time=False, predecessor_applied=False)
        first_time = await self.claim(message_id, consumer)
        applied = predecessor is None or await self.handled(predecessor)
        return ProviderClaim(payment, first_time=first_time, predecessor_applied=applied)

    async def claim(self, message_id: uuid.UUID, consumer: str) -> bool:
        if message_id in self.store.inbox or message_id in self.inbox:
            return False
        self.inbox.add(message_id)
        return True

    async def claim_and_lock_many(
        self,
        payment_ids: Sequence[uuid.UUID],
        message_ids: Sequence[uuid.UUID],
        consumer: str,
        predecessors: Sequence[uuid.UUID] = (),
    ) -> BatchClaim:
        payments = self._payments()
        applied = await self.handled_among(predecessors)
        return BatchClaim(
            payments={i: payments[i] for i in sorted(set(payment_ids)) if i in payments},
            claimed={m for m in message_ids if await self.claim(m, consumer)},
            applied=applied,
        )

    async def unclaim(self, message_ids: Sequence[uuid.UUID]) -> None:
        self.inbox.difference_update(message_ids)

    async def handled_among(self, message_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        return {m for m in message_ids if await self.handled(m)}

    async def inspect(self, lookup: str) -> list[dict[str, Any]]:
        return [
            {"id": str(p.id), "reference": p.reference, "status": p.status.value}
            for p in self._payments().values()
            if lookup in (str(p.id), p.reference, p.psp_reference)
        ]

    async def handled(self, message_id: uuid.UUID) -> bool:
        return message_id in self.store.inbox or message_id in self.inbox

    async def lock(self, payment_id: uuid.UUID) -> Payment | None:
        return self._payments().get(payment_id)

    async def save(
        self,
        change: PaymentChange,
        reason: str,
        message_id: uuid.UUID | None,
        messages: Sequence[Outgoing] = (),
    ) -> Payment:
        stored = self._payments()[change.after.id]
        completed = change.after.status is PaymentStatus.COMPLETED
        payment = replace(
            change.after,
            version=stored.version + 1,
            completed_at=change.after.updated_at if completed else stored.completed_at,
        )
        self.payments[payment.id] = payment
        if change.transition.changed:
            self.transitions.append(
                Transition(payment.id, change.before.status, payment.status, reason, message_id)
            )
        for exchange, routing_key, message in messages:
            await self.publish(exchange, routing_key, message)
        return payment

    async def due_for_expiry(self, batch: int) -> list[Payment]:
        due = [p for p in self._payments().values() if p.is_open and p.expires_at <= self.store.now]
        return sorted(due, key=lambda p: p.expires_at)[:batch]

    async def refund_by_key(self, payment_id: uuid.UUID, idempotency_key: str) -> Refund | None:
        return next(
            (
                r
                for r in self._refunds().values()
                if r.payment_id == payment_id and r.idempotency_key == idempotency_key
            ),
            None,
        )

    async def pending_refunds(self, payment_id: uuid.UUID) -> int:
        return sum(
            r.amount
            for r in self._refunds().values()
            if r.payment_id == payment_id and r.is_pending
        )

    async def add_refund(self, refund: Refund) -> Refund:
        key = refund.idempotency_key
        if refund.id in self._refunds() or (
            key and await self.refund_by_key(refund.payment_id, key)
        ):
            raise IntegrityError(f"refund {refund.id} already exists")
        stored = replace(refund, created_at=self.store.now)
        self.refunds[refund.id] = stored
        return stored

    async def lock_refund(self, refund_id: uuid.UUID) -> Refund | None:
        return self._refunds().get(refund_id)

    async def settle_refund(
        self,
        refund_id: uuid.UUID,
        status: RefundStatus,
        psp_reference: str | None,
        failure_code: str | None,
        failure_message: str | None,
    ) -> Refund:
        refund = replace(
            self._refunds()[refund_id],
            status=status,
            psp_reference=psp_reference,
            failure_code=failure_code,
            failure_message=failure_message,
            completed_at=self.store.now,
        )
        self.refunds[refund_id] = refund
        return refund

    async def add_refunded(self, payment_id: uuid.UUID, amount: int) -> Payment:
        stored = self._payments()[payment_id]
        if stored.refunded_amount + amount > stored.amount:
            raise IntegrityError("refunded_amount <= amount")
        payment = replace(
            stored,
            refunded_amount=stored.refunded_amount + amount,
            updated_at=self.store.now,
            version=stored.version + 1,
        )
        self.payments[payment_id] = payment
        return payment

    async def settled_movements(self, query: SettledMovementsQuery) -> list[SettledMovement]:
        def wanted(at: datetime | None, found_id: uuid.UUID, ids: list[uuid.UUID]) -> bool:
            if at is None:
                return False
            if query.start is None or query.end is None:
                return found_id in ids
            return query.start <= at < query.end

        def scoped(p: Payment) -> bool:
            return all(
                want is None or want == have
                for want, have in (
                    (query.provider, p.provider),
                    (query.environment, p.environment),
                    (query.merchant_id, p.merchant_id),
                )
            )

        payments = self._payments()
        collected = [
            SettledMovement(
                kind="payment",
                payment_id=p.id,
                environment=p.environment,
                currency=p.currency,
                amount_minor=to_minor(p.amount),
                psp_fee_minor=p.fee_minor or 0,
                completed_at=p.completed_at,  # type: ignore[arg-type]
            )
            for p in payments.values()
            if p.status in COLLECTED
            and scoped(p)
            and wanted(p.completed_at, p.id, query.payment_ids)
        ]
        paid_out = [
            SettledMovement(
                kind="refund",
                payment_id=r.payment_id,
                refund_id=r.id,
                environment=r.environment,
                currency=r.currency,
                amount_minor=to_minor(r.amount),
                completed_at=r.completed_at,  # type: ignore[arg-type]
            )
            for r in self._refunds().values()
            if r.status is RefundStatus.COMPLETED
            and scoped(payments[r.payment_id])
            and wanted(r.completed_at, r.id, query.refund_ids)
        ]
        return [*collected, *paid_out]

    async def payment_cursor(
        self, merchant_id: uuid.UUID, environment: str, payment_id: uuid.UUID
    ) -> Cursor | None:
        p = self._payments().get(payment_id)
        if p is None or (p.merchant_id, p.environment) != (merchant_id, environment):
            return None
        return Cursor(p.created_at, p.id)

    async def refund_cursor(
        self, merchant_id: uuid.UUID, environment: str, refund_id: uuid.UUID
    ) -> Cursor | None:
        r = self._refunds().get(refund_id)
        if r is None or (r.merchant_id, r.environment) != (merchant_id, environment):
            return None
        assert r.created_at is not None
        return Cursor(r.created_at, r.id)

    async def list_payments(self, listing: Listing) -> list[Payment]:
        found = [
            p
            for p in self._payments().values()
            if (p.merchant_id, p.environment) == (listing.merchant_id, listing.environment)
            and listing.status in (None, p.status.value)
            and payment_matches(listing, p)
            and in_page(listing, Cursor(p.created_at, p.id))
        ]
        found.sort(key=lambda p: Cursor(p.created_at, p.id), reverse=True)
        return found[: listing.limit]

    async def list_refunds(self, listing: Listing) -> list[tuple[Refund, str]]:
        payments = self._payments()
        found = [
            (r, payments[r.payment_id])
            for r in self._refunds().values()
            if (r.merchant_id, r.environment) == (listing.merchant_id, listing.environment)
            and listing.payment_id in (None, r.payment_id)
            and listing.status in (None, r.status.value)
            and payment_matches(listing, payments[r.payment_id])
            and in_page(listing, Cursor(r.created_at, r.id))  # type: ignore[arg-type]
        ]
        found.sort(key=lambda pair: Cursor(pair[0].created_at, pair[0].id), reverse=True)  # type: ignore[arg-type]
        return [(r, p.reference) for r, p in found[: listing.limit]]

    async def publish(self, exchange: RabbitExchange, routing_key: str, message: Message) -> None:
        self.outbox.append(Published(exchange.name, routing_key, message))
