"""What the handlers need from the outside: one unit of work per transaction, and the
request/reply calls to connectors and the ledger. Adapters implement them (PostgreSQL,
RabbitMQ); `adapters/memory.py` is the fake the handler tests run on."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from faststream.rabbit import RabbitExchange

from fluxpay_common.messages import (
    Message,
    ProviderPaymentUpdate,
    ReserveRefund,
    SettledMovement,
    SettledMovementsQuery,
)
from payment_orchestrator.domain.listing import Cursor, Listing
from payment_orchestrator.domain.payment import Payment, PaymentChange, Refund
from payment_orchestrator.domain.status import RefundStatus

# A message to publish through the outbox: (exchange, routing key, message).
Outgoing = tuple[RabbitExchange, str, Message]


@dataclass(frozen=True)
class ProviderClaim:
    """A provider update's claim: the payment, locked (None if unknown); whether the update
    is new (not in the inbox before); whether the predecessor it named is in the inbox.

    `predecessor_applied` is read in the claim's own statement, whose snapshot is taken
    before it waits for the row lock: a predecessor that held the lock and committed while
    this statement waited is not seen (look again with `handled` before waiting for it).
    """

    payment: Payment | None
    first_time: bool
    predecessor_applied: bool


@dataclass(frozen=True)
class BatchClaim:
    """A batch of provider updates' claim: the payments that exist, locked; the message ids
    claimed now (the others were handled before); the predecessors seen in the inbox."""

    payments: dict[uuid.UUID, Payment]
    claimed: set[uuid.UUID]
    applied: set[uuid.UUID]


class UnitOfWork(Protocol):
    """Payments, refunds, the inbox and the outbox in one transaction: leaving the context
    commits (an error rolls everything back, outbox messages included)."""

    async def find(
        self,
        merchant_id: uuid.UUID,
        environment: str,
        reference_or_id: str,
        *,
        lock: bool = False,
    ) -> Payment | None:
        """The merchant's payment by its reference or its id (the id wins)."""
        ...

    async def by_reference(
        self, merchant_id: uuid.UUID, environment: str, reference: str
    ) -> Payment | None: ...

    def now(self) -> datetime:
        """The store's clock: the time a write made now records (`stored_at`)."""
        ...

    async def add(
        self, payment: Payment, message_id: uuid.UUID | None, messages: Sequence[Outgoing] = ()
    ) -> Payment | None:
        """Store a new payment (`NewPayment.stored_at(uow.now())`), its `created` transition
        and the messages announcing it, in one statement; None (and nothing written) if the
        reference is taken."""
        ...

    async def claim_and_lock(
        self,
        payment_id: uuid.UUID,
        message_id: uuid.UUID,
        consumer: str,
        predecessor: uuid.UUID | None = None,
    ) -> ProviderClaim:
        """Lock the payment, record the message as handled and look for `predecessor` (if
        any) in the inbox, in one statement."""
        ...

    async def claim(self, message_id: uuid.UUID, consumer: str) -> bool: ...

    async def claim_and_lock_many(
        self,
        payment_ids: Sequence[uuid.UUID],
        message_ids: Sequence[uuid.UUID],
        consumer: str,
        predecessors: Sequence[uuid.UUID] = (),
    ) -> BatchClaim:
        """Lock the payments in id order (every writer that locks several payments takes
        them in this order: no deadlock between them), claim the messages and look for the
        predecessors in the inbox, in one statement (the look's snapshot is as stale as
        `ProviderClaim.predecessor_applied`'s)."""
        ...

    async def unclaim(self, message_ids: Sequence[uuid.UUID]) -> None:
        """Take back claims made in this transaction (messages left for later)."""
        ...

    async def handled_among(self, message_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of `message_ids` the inbox holds (handled and committed)."""
        ...

    async def inspect(self, lookup: str) -> list[dict[str, Any]]:
        """For an operator: every payment `lookup` names (id, any merchant's reference, or
        PSP reference) with its transitions and refunds, as JSON objects."""
        ...

    async def handled(self, message_id: uuid.UUID) -> bool:
        """Whether the inbox holds this message (handled and committed)."""
        ...

    async def lock(self, payment_id: uuid.UUID) -> Payment | None: ...

    async def save(
        self,
        change: PaymentChange,
        reason: str,
        message_id: uuid.UUID | None,
        messages: Sequence[Outgoing] = (),
    ) -> Payment:
        """Write the change (`change.stored_at(uow.now())`), its transition record when the
        status moved and the messages it causes (through the outbox), in one statement; the
        payment as stored."""
        ...

    async def due_for_expiry(self, batch: int) -> list[Payment]:
        """Open payments past their deadline, locked, skipping those another sweep holds."""
        ...

    async def refund_by_key(self, payment_id: uuid.UUID, idempotency_key: str) -> Refund | None: ...

    async def pending_refunds(self, payment_id: uuid.UUID) -> int:
        """The sum of the payment's refunds accepted and not yet settled."""
        ...

    async def add_refund(self, refund: Refund) -> Refund: ...

    async def lock_refund(self, refund_id: uuid.UUID) -> Refund | None: ...

    async def settle_refund(
        self,
        refund_id: uuid.UUID,
        status: RefundStatus,
        psp_reference: str | None,
        failure_code: str | None,
        failure_message: str | None,
    ) -> Refund: ...

    async def add_refunded(self, payment_id: uuid.UUID, amount: int) -> Payment:
        """Count a settled refund on its (locked) payment."""
        ...

    async def settled_movements(self, query: SettledMovementsQuery) -> list[SettledMovement]:
        """Payments collected and refunds paid out, by window or by id (reconciliation)."""
        ...

    async def payment_cursor(
        self, merchant_id: uuid.UUID, environment: str, payment_id: uuid.UUID
    ) -> Cursor | None:
        """Where the merchant's payment sits in its lists (None: not the merchant's)."""
        ...

    async def refund_cursor(
        self, merchant_id: uuid.UUID, environment: str, refund_id: uuid.UUID
    ) -> Cursor | None: ...

    async def list_payments(self, listing: Listing) -> list[Payment]:
        """Up to `listing.limit` payments, newest first, after the listing's cursor."""
        ...

    async def list_refunds(self, listing: Listing) -> list[tuple[Refund, str]]:
        """Up to `listing.limit` refunds with their payment's reference, newest first."""
        ...

    async def publish(self, exchange: RabbitExchange, routing_key: str, message: Message) -> None:
        """Through the outbox: sent after, and only if, the transaction commits."""
        ...


class OpenUnitOfWork(Protocol):
    """A unit of work; `transactional=False` for reads, or one write that is a single
    statement (atomic by itself): no BEGIN/COMMIT round trips."""

    def __call__(
        self, *, transactional: bool = True
    ) -> AbstractAsyncContextManager[UnitOfWork]: ...


# A synchronous request to a provider's connector (OTP, status sync).
ConnectorCall = Callable[[str, Message], Awaitable[ProviderPaymentUpdate]]
# Asks the ledger to hold a refund's amount: (held, available minor units before it).
RefundReservation = Callable[[ReserveRefund], Awaitable[tuple[bool, int]]]
