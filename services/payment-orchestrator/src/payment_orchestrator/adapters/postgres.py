"""The unit of work in PostgreSQL: payments, refunds, transitions, inbox and outbox on one
connection, in one transaction.

The hot paths stay single statements: a payment's new state and its transition record
(`save`), a provider update's inbox claim, the payment's row lock and the look for its
predecessor in the inbox (`claim_and_lock`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import asyncpg
from faststream.rabbit import RabbitExchange

from fluxpay_common import inbox
from fluxpay_common.ids import parse_uuid
from fluxpay_common.inspection import rows_as_json
from fluxpay_common.messages import Message, SettledMovement, SettledMovementsQuery
from fluxpay_common.outbox import (
    RETURNED,
    OutboxRelay,
    add_to_outbox,
    outbox_transaction,
    statement_rows,
)
from fluxpay_common.tracing import current_traceparent
from payment_orchestrator.domain.listing import Cursor, Listing
from payment_orchestrator.domain.payment import Payment, PaymentChange, Refund
from payment_orchestrator.domain.status import COLLECTED, OPEN, PaymentStatus, RefundStatus
from payment_orchestrator.service_layer.ports import (
    BatchClaim,
    OpenUnitOfWork,
    Outgoing,
    ProviderClaim,
    UnitOfWork,
)

_PAYMENT_FIELDS = tuple(f.name for f in fields(Payment))
_REFUND_FIELDS = tuple(f.name for f in fields(Refund))

# The payment, its `created` transition and the messages announcing it (outbox), in one
# statement: atomic without BEGIN/COMMIT. A taken reference writes nothing.
_INSERT_PAYMENT = f"""
WITH created AS (
    INSERT INTO payment (id, merchant_id, environment, reference, idempotency_key, status,
                         amount, currency, country, mode, operator, customer, description,
                         callback_url, external_merchant_id, metadata, provider,
                         otp_attempts_left, expires_at, created_at, updated_at, traceparent)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
            $19, $20, $20, $22)
    ON CONFLICT (merchant_id, environment, reference) DO NOTHING
    RETURNING *
), recorded AS (
    INSERT INTO payment_transition (payment_id, from_status, to_status, reason, message_id)
    SELECT id, NULL, status, 'created', $21 FROM created
), {{outbox}}
SELECT created.*, {RETURNED} FROM created
"""
_INSPECT = """
SELECT p.*,
    (SELECT json_agg(row_to_json(t) ORDER BY t.id) FROM payment_transition t
     WHERE t.payment_id = p.id) AS transitions,
    (SELECT json_agg(row_to_json(r) ORDER BY r.created_at) FROM refund r
     WHERE r.payment_id = p.id) AS refunds
FROM payment p WHERE p.id = $2 OR p.reference = $1 OR p.psp_reference = $1
ORDER BY p.created_at LIMIT 20
"""
_FIND = (
    "SELECT * FROM payment WHERE merchant_id = $1 AND environment = $2"
    " AND (reference = $3 OR id = $4) ORDER BY (id = $4) DESC NULLS LAST LIMIT 1"
)
_CLAIM_AND_LOCK = (
    f"WITH {inbox.claim_cte(2, 3)}"
    " SELECT p.*, EXISTS (SELECT 1 FROM claimed) AS first_time,"
    " ($4::uuid IS NULL OR EXISTS (SELECT 1 FROM inbox_message i WHERE i.message_id = $4))"
    " AS predecessor_applied"
    " FROM payment p WHERE p.id = $1 FOR UPDATE OF p"
)
# A batch of provider updates: the payments locked in id order (LockRows runs above the
# sort), then every message claimed (the count makes the claim wait for all the locks: a
# claim that waits on another transaction's never holds a lock that one still needs), the
# predecessors looked for, in one statement.
_CLAIM_AND_LOCK_MANY = """
WITH locked AS MATERIALIZED (
    SELECT p.* FROM payment p WHERE p.id = ANY($1::uuid[]) ORDER BY p.id FOR UPDATE OF p
), claimed AS (
    INSERT INTO inbox_message (message_id, consumer)
    SELECT m, $3 FROM unnest($2::uuid[]) AS m WHERE (SELECT count(*) FROM locked) > 0
    ON CONFLICT (message_id) DO NOTHING RETURNING message_id
)
SELECT locked.*,
    (SELECT array_agg(message_id) FROM claimed) AS claimed_ids,
    (SELECT array_agg(message_id) FROM inbox_message WHERE message_id = ANY($4::uuid[]))
        AS applied_ids
FROM locked
"""
_INSERT_REFUND = """
INSERT INTO refund (id, payment_id, merchant_id, environment, idempotency_key, status, amount,
                    currency, reason, metadata)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *
"""


# The reconciliation door (SettledMovementsQuery): amounts in minor units on the wire.
_SETTLED_PAYMENTS = """
SELECT 'payment' AS kind, id AS payment_id, NULL::uuid AS refund_id, environment, currency,
       amount * 100 AS amount_minor, coalesce(fee_minor, 0) AS psp_fee_minor, completed_at
  FROM payment
 WHERE status = ANY($1::text[]) AND completed_at IS NOT NULL
   AND (CASE WHEN $2::timestamptz IS NULL THEN id = ANY($7::uuid[])
             ELSE completed_at >= $2 AND completed_at < $3 END)
   AND ($4::text IS NULL OR provider = $4)
   AND ($5::text IS NULL OR environment = $5)
   AND ($6::uuid IS NULL OR merchant_id = $6)
"""
_SETTLED_REFUNDS = """
SELECT 'refund' AS kind, r.payment_id, r.id AS refund_id, r.environment, r.currency,
       r.amount * 100 AS amount_minor, 0 AS psp_fee_minor, r.completed_at
  FROM refund r JOIN payment p ON p.id = r.payment_id
 WHERE r.status = 'completed' AND r.completed_at IS NOT NULL
   AND (CASE WHEN $1::timestamptz IS NULL THEN r.id = ANY($6::uuid[])
             ELSE r.completed_at >= $1 AND r.completed_at < $2 END)
   AND ($3::text IS NULL OR p.provider = $3)
   AND ($4::text IS NULL OR r.environment = $4)
   AND ($5::uuid IS NULL OR r.merchant_id = $5)
"""

# A merchant's lists: keyset pagination on (created_at, id), newest first, on the
# indexes of migration 0006. The reference prefix is matched with starts_with (no LIKE
# wildcards to escape in what the merchant typed).
_LIST_FILTERS = """
   AND ($3::text IS NULL OR {status} = $3)
   AND ($4::text IS NULL OR p.operator = $4)
   AND ($5::text IS NULL OR p.provider = $5)
   AND ($6::text IS NULL OR p.country = $6)
   AND ($7::text IS NULL OR {currency} = $7)
   AND ($8::text IS NULL OR starts_with(p.reference, $8))
   AND ($9::timestamptz IS NULL OR {created} >= $9)
   AND ($10::timestamptz IS NULL OR {created} < $10)
   AND ($11::timestamptz IS NULL OR ({created}, {id}) < ($11, $12::uuid))
"""
_LIST_PAYMENTS = (
    "SELECT p.* FROM payment p WHERE p.merchant_id = $1 AND p.environment = $2"
    + _LIST_FILTERS.format(
        status="p.status", currency="p.currency", created="p.created_at", id="p.id"
    )
    + " ORDER BY p.created_at DESC, p.id DESC LIMIT $13"
)
_LIST_REFUNDS = (
    "SELECT r.*, p.reference AS payment_reference FROM refund r"
    " JOIN payment p ON p.id = r.payment_id"
    " WHERE r.merchant_id = $1 AND r.environment = $2"
    " AND ($14::uuid IS NULL OR r.payment_id = $14)"
    + _LIST_FILTERS.format(
        status="r.status", currency="r.currency", created="r.created_at", id="r.id"
    )
    + " ORDER BY r.created_at DESC, r.id DESC LIMIT $13"
)


class PostgresUnitOfWork(UnitOfWork):
    def __init__(self, conn: asyncpg.Connection, relay: OutboxRelay | None = None) -> None:
        self._conn = conn
        self._relay = relay

    async def find(
        self,
        merchant_id: uuid.UUID,
        environment: str,
        reference_or_id: str,
        *,
        lock: bool = False,
    ) -> Payment | None:
        row = await self._conn.fetchrow(
            _FIND + (" FOR UPDATE" if lock else ""),
            merchant_id,
            environment,
            reference_or_id,
            parse_uuid(reference_or_id),
        )
        return None if row is None else _payment(row)

    async def by_reference(
        self, merchant_id: uuid.UUID, environment: str, reference: str
    ) -> Payment | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM payment WHERE merchant_id = $1 AND environment = $2 AND reference = $3",
            merchant_id,
            environment,
            reference,
        )
        return None if row is None else _payment(row)

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def add(
        self, payment: Payment, message_id: uuid.UUID | None, messages: Sequence[Outgoing] = ()
    ) -> Payment | None:
        outbox = statement_rows(self._conn, self._relay, messages)
        row = await self._conn.fetchrow(
            _INSERT_PAYMENT.format(outbox=outbox.cte(23, "EXISTS (SELECT 1 FROM created)")),
            payment.id,
            payment.merchant_id,
            payment.environment,
            payment.reference,
            payment.idempotency_key,
            payment.status.value,
            payment.amount,
            payment.currency,
            payment.country,
            payment.mode,
            payment.operator,
            payment.customer,
            payment.description,
            payment.callback_url,
            payment.external_merchant_id,
            payment.metadata,
            payment.provider,
            payment.otp_attempts_left,
            payment.expires_at,
            payment.created_at,
            message_id,
            current_traceparent(),
            *outbox.args(),
        )
        await outbox.written(self._conn, row)
        return None if row is None else _payment(row)

    async def claim_and_lock(
        self,
        payment_id: uuid.UUID,
        message_id: uuid.UUID,
        consumer: str,
        predecessor: uuid.UUID | None = None,
    ) -> ProviderClaim:
        row = await self._conn.fetchrow(
            _CLAIM_AND_LOCK, payment_id, message_id, consumer, predecessor
        )
        if row is None:
            return ProviderClaim(None, first_time=False, predecessor_applied=False)
        return ProviderClaim(
            _payment(row),
            first_time=bool(row["first_time"]),
            predecessor_applied=bool(row["predecessor_applied"]),
        )

    async def claim(self, message_id: uuid.UUID, consumer: str) -> bool:
        return await inbox.claim(self._conn, message_id, consumer)

    async def claim_and_lock_many(
        self,
        payment_ids: Sequence[uuid.UUID],
        message_ids: Sequence[uuid.UUID],
        consumer: str,
        predecessors: Sequence[uuid.UUID] = (),
    ) -> BatchClaim:
        rows = await self._conn.fetch(
            _CLAIM_AND_LOCK_MANY,
            sorted(set(payment_ids)),
            list(message_ids),
            consumer,
            list(predecessors),
        )
        if not rows:
            return BatchClaim({}, set(), set())
        return BatchClaim(
            payments={row["id"]: _payment(row) for row in rows},
            claimed=set(rows[0]["claimed_ids"] or ()),
            applied=set(rows[0]["applied_ids"] or ()),
        )

    async def unclaim(self, message_ids: Sequence[uuid.UUID]) -> None:
        await self._conn.execute(
            "DELETE FROM inbox_message WHERE message_id = ANY($1::uuid[])", list(message_ids)
        )

    async def handled_among(self, message_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        rows = await self._conn.fetch(
            "SELECT message_id FROM inbox_message WHERE message_id = ANY($1::uuid[])",
            list(message_ids),
        )
        return {row["message_id"] for row in rows}

    async def inspect(self, lookup: str) -> list[dict[str, Any]]:
        return await rows_as_json(self._conn, _INSPECT, lookup, parse_uuid(lookup))

    async def handled(self, message_id: uuid.UUID) -> bool:
        found = await self._conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM inbox_message WHERE message_id = $1)", message_id
        )
        return bool(found)

    async def lock(self, payment_id: uuid.UUID) -> Payment | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM payment WHERE id = $1 FOR UPDATE", payment_id
        )
        return None if row is None else _payment(row)

    async def save(
        self,
        change: PaymentChange,
        reason: str,
        message_id: uuid.UUID | None,
        messages: Sequence[Outgoing] = (),
    ) -> Payment:
        update_sql, args = _update(change)
        recorded = ""
        if change.transition.changed:
            n = len(args)
            recorded = (
                " recorded AS (INSERT INTO payment_transition (payment_id, from_status,"
                f" to_status, reason, message_id) SELECT id, ${n + 1}, status, ${n + 2},"
                f" ${n + 3} FROM updated),"
            )
            args += [change.transition.previous.value, reason, message_id]
        # The new state, its transition record and its messages in one statement.
        outbox = statement_rows(self._conn, self._relay, messages)
        row = await self._conn.fetchrow(
            f"WITH updated AS ({update_sql}),{recorded}"
            f" {outbox.cte(len(args) + 1, 'EXISTS (SELECT 1 FROM updated)')}"
            f" SELECT updated.*, {RETURNED} FROM updated",
            *args,
            *outbox.args(),
        )
        assert row is not None, f"payment {change.after.id} vanished under its lock"
        await outbox.written(self._conn, row)
        return _payment(row)

    async def due_for_expiry(self, batch: int) -> list[Payment]:
        rows = await self._conn.fetch(
            "SELECT * FROM payment WHERE status = ANY($1::text[]) AND expires_at <= now()"
            " ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            [s.value for s in OPEN],
            batch,
        )
        return [_payment(row) for row in rows]

    async def refund_by_key(self, payment_id: uuid.UUID, idempotency_key: str) -> Refund | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM refund WHERE payment_id = $1 AND idempotency_key = $2",
            payment_id,
            idempotency_key,
        )
        return None if row is None else _refund(row)

    async def pending_refunds(self, payment_id: uuid.UUID) -> int:
        total = await self._conn.fetchval(
            "SELECT coalesce(sum(amount), 0)::bigint FROM refund"
            " WHERE payment_id = $1 AND status = 'pending'",
            payment_id,
        )
        return int(total)

    async def add_refund(self, refund: Refund) -> Refund:
        row = await self._conn.fetchrow(
            _INSERT_REFUND,
            refund.id,
            refund.payment_id,
            refund.merchant_id,
            refund.environment,
            refund.idempotency_key,
            refund.status.value,
            refund.amount,
            refund.currency,
            refund.reason,
            refund.metadata,
        )
        return _refund(row)

    async def lock_refund(self, refund_id: uuid.UUID) -> Refund | None:
        row = await self._conn.fetchrow("SELECT * FROM refund WHERE id = $1 FOR UPDATE", refund_id)
        return None if row is None else _refund(row)

    async def settle_refund(
        self,
        refund_id: uuid.UUID,
        status: RefundStatus,
        psp_reference: str | None,
        failure_code: str | None,
        failure_message: str | None,
    ) -> Refund:
        row = await self._conn.fetchrow(
            "UPDATE refund SET status = $2, psp_reference = $3, failure_code = $4,"
            " failure_message = $5, completed_at = now() WHERE id = $1 RETURNING *",
            refund_id,
            status.value,
            psp_reference,
            failure_code,
            failure_message,
        )
        return _refund(row)

    async def add_refunded(self, payment_id: uuid.UUID, amount: int) -> Payment:
        row = await self._conn.fetchrow(
            "UPDATE payment SET refunded_amount = refunded_amount + $2,"
            " updated_at = now(), version = version + 1 WHERE id = $1 RETURNING *",
            payment_id,
            amount,
        )
        return _payment(row)

    async def settled_movements(self, query: SettledMovementsQuery) -> list[SettledMovement]:
        scope = (query.start, query.end, query.provider, query.environment, query.merchant_id)
        payments = await self._conn.fetch(
            _SETTLED_PAYMENTS, [s.value for s in COLLECTED], *scope, query.payment_ids
        )
        refunds = await self._conn.fetch(_SETTLED_REFUNDS, *scope, query.refund_ids)
        return [SettledMovement(**dict(row)) for row in [*payments, *refunds]]

    async def payment_cursor(
        self, merchant_id: uuid.UUID, environment: str, payment_id: uuid.UUID
    ) -> Cursor | None:
        return await self._cursor("payment", merchant_id, environment, payment_id)

    async def refund_cursor(
        self, merchant_id: uuid.UUID, environment: str, refund_id: uuid.UUID
    ) -> Cursor | None:
        return await self._cursor("refund", merchant_id, environment, refund_id)

    async def _cursor(
        self, table: str, merchant_id: uuid.UUID, environment: str, object_id: uuid.UUID
    ) -> Cursor | None:
        row = await self._conn.fetchrow(
            f"SELECT created_at, id FROM {table}"
            " WHERE id = $1 AND merchant_id = $2 AND environment = $3",
            object_id,
            merchant_id,
            environment,
        )
        return None if row is None else Cursor(row["created_at"], row["id"])

    async def list_payments(self, listing: Listing) -> list[Payment]:
        rows = await self._conn.fetch(_LIST_PAYMENTS, *_list_args(listing))
        return [_payment(row) for row in rows]

    async def list_refunds(self, listing: Listing) -> list[tuple[Refund, str]]:
        rows = await self._conn.fetch(_LIST_REFUNDS, *_list_args(listing), listing.payment_id)
        return [(_refund(row), row["payment_reference"]) for row in rows]

    async def publish(self, exchange: RabbitExchange, routing_key: str, message: Message) -> None:
        await add_to_outbox(self._conn, exchange, routing_key, message)


def _update(change: PaymentChange) -> tuple[str, list[Any]]:
    """UPDATE of the status and the change's columns (only those: a provider update
    touches a few), with the clock's fields `stored_at` gave the change (the events built
    from it show what is stored)."""
    assignments = "".join(f", {column} = ${i}" for i, column in enumerate(change.columns, start=3))
    n = len(change.columns) + 3
    sql = (
        f"UPDATE payment SET status = $2, updated_at = ${n + 1}, version = version + 1,"
        f" completed_at = CASE WHEN $2 = 'completed' THEN ${n + 1} ELSE completed_at END,"
        f" late_success = late_success OR ${n}{assignments} WHERE id = $1 RETURNING *"
    )
    after = change.after
    values = [getattr(after, column) for column in change.columns]
    return sql, [
        after.id,
        after.status.value,
        *values,
        change.transition.late_success,
        after.updated_at,
    ]


def _list_args(listing: Listing) -> list[Any]:
    after = listing.after
    return [
        listing.merchant_id,
        listing.environment,
        listing.status,
        listing.operator,
        listing.provider,
        listing.country,
        listing.currency,
        listing.reference_prefix,
        listing.created_gte,
        listing.created_lt,
        None if after is None else after.created_at,
        None if after is None else after.id,
        listing.limit,
    ]


def _payment(row: asyncpg.Record) -> Payment:
    values = {name: row[name] for name in _PAYMENT_FIELDS}
    values["status"] = PaymentStatus(values["status"])
    return Payment(**values)


def _refund(row: asyncpg.Record) -> Refund:
    values = {name: row[name] for name in _REFUND_FIELDS}
    values["status"] = RefundStatus(values["status"])
    return Refund(**values)


def postgres_unit_of_work(pool: asyncpg.Pool, relay: OutboxRelay | None = None) -> OpenUnitOfWork:
    """An `OpenUnitOfWork` over the pool: one connection, and one transaction unless read-only.
    With a relay, the messages a unit of work publishes go to it as soon as it commits."""

    def open_uow(*, transactional: bool = True) -> AbstractAsyncContextManager[UnitOfWork]:
        return _unit_of_work(pool, transactional, relay)

    return open_uow


@asynccontextmanager
async def _unit_of_work(
    pool: asyncpg.Pool, transactional: bool, relay: OutboxRelay | None
) -> AsyncIterator[UnitOfWork]:
    async with pool.acquire() as conn:
        if not transactional:
            yield PostgresUnitOfWork(conn, relay)
            return
        async with outbox_transaction(conn, relay):
            yield PostgresUnitOfWork(conn, relay)
