"""Issuing dues: each run records the periods now due for every enrolled payer, then
creates each due's payment and announces it (`collect.due.issued`), then marks unpaid
dues past their date overdue.

Exactly one due per payer and period, however many runs: the due is recorded first under
the unique (payer, period) constraint (`ON CONFLICT DO NOTHING`); its payment is created
with the due's id as Idempotency-Key and `due-{id}` as reference, so a run that stopped
after recording (a crash, a restart) is finished by the next one with the same payment;
the event goes through the outbox in the transaction that sets `issued_at`, once. Runs
take a PostgreSQL advisory lock so that two gateway instances do not do the work twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg

from api_gateway.dues_rules import Schedule, due_to_issue
from api_gateway.dues_store import DUE_SELECT, due_body
from api_gateway.rpc import Orchestrator
from fluxpay_common.logging import get_logger
from fluxpay_common.messages import CreatePayment, DueEvent, PaymentView, Reply
from fluxpay_common.outbox import add_to_outbox
from fluxpay_common.topology import EVENTS

log = get_logger(__name__)
LOCK = "gateway:dues-scheduler"


@dataclass(frozen=True)
class Scope:
    """A run for every merchant (None) or for one merchant's environment."""

    merchant_id: uuid.UUID | None = None
    environment: str | None = None


@dataclass(frozen=True)
class DuesPolicy:
    # How long the payer has to pay a due's payment (the orchestrator expires it after).
    payment_window_seconds: int


async def run(
    pool: asyncpg.Pool,
    orchestrator: Orchestrator,
    policy: DuesPolicy,
    run_on: date,
    scope: Scope = Scope(),
    *,
    wait_for_lock: bool = True,
) -> dict[str, int] | None:
    """One run for `run_on`; None when another run holds the lock and we may not wait."""
    async with pool.acquire() as lock:
        if wait_for_lock:
            await lock.execute("SELECT pg_advisory_lock(hashtext($1))", LOCK)
        elif not await lock.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", LOCK):
            return None
        try:
            recorded = await record_due_periods(pool, run_on, scope)
            issued = 0
            for due in await _not_yet_issued(pool, scope):
                issued += await issue(pool, orchestrator, policy, due)
            overdue = await mark_overdue(pool, run_on, scope)
        finally:
            await lock.execute("SELECT pg_advisory_unlock(hashtext($1))", LOCK)
    return {"recorded": recorded, "issued": issued, "overdue": overdue}


async def record_due_periods(pool: asyncpg.Pool, run_on: date, scope: Scope) -> int:
    rows = await pool.fetch(
        "SELECT t.*, p.id AS payer_id, p.enrolled_at FROM payment_type t"
        " JOIN payer p ON p.payment_type_id = t.id"
        " WHERE t.active AND p.active AND ($1::uuid IS NULL OR t.merchant_id = $1)"
        " AND ($2::text IS NULL OR t.environment = $2)",
        scope.merchant_id,
        scope.environment,
    )
    recorded = 0
    for row in rows:
        schedule = Schedule(row["recurrence"], row["due_day"], row["due_date"])
        period = due_to_issue(schedule, run_on, row["enrolled_at"].astimezone(UTC).date())
        if period is None:
            continue
        status = await pool.execute(
            "INSERT INTO due (id, payer_id, payment_type_id, merchant_id, environment, period,"
            " due_date, amount, currency, status)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'issuing')"
            " ON CONFLICT (payer_id, period) DO NOTHING",
            uuid.uuid4(),
            row["payer_id"],
            row["id"],
            row["merchant_id"],
            row["environment"],
            period.name,
            period.due_date,
            row["amount"],
            row["currency"],
        )
        recorded += status.endswith(" 1")
    return recorded


_NOT_YET_ISSUED = """
SELECT d.*, p.name AS payer_name, p.phone AS payer_phone, p.operator AS payer_operator,
       t.name AS type_name, t.country, t.delivery
  FROM due d JOIN payer p ON p.id = d.payer_id JOIN payment_type t ON t.id = d.payment_type_id
 WHERE d.issued_at IS NULL AND d.status <> 'cancelled'
   AND ($1::uuid IS NULL OR d.merchant_id = $1) AND ($2::text IS NULL OR d.environment = $2)
 ORDER BY d.created_at
"""


async def _not_yet_issued(pool: asyncpg.Pool, scope: Scope) -> list[asyncpg.Record]:
    """Recorded and not yet issued: this run's, and those a stopped run left."""
    return list(await pool.fetch(_NOT_YET_ISSUED, scope.merchant_id, scope.environment))


async def issue(
    pool: asyncpg.Pool, orchestrator: Orchestrator, policy: DuesPolicy, due: asyncpg.Record
) -> int:
    """The due's payment (created once), then `issued` with its event; 1 if issued now."""
    try:
        reply: Reply = await orchestrator.call(_payment_for(due, policy))
    except Exception as exc:  # the orchestrator is away: the next run retries this due
        log.warning("due_payment_not_created", due_id=str(due["id"]), error=repr(exc))
        return 0
    if reply.error is not None or reply.payment is None:
        log.error(
            "due_payment_refused", due_id=str(due["id"]), code=reply.error and reply.error.code
        )
        return 0
    return await _mark_issued(pool, due, reply.payment)


def _payment_for(due: asyncpg.Record, policy: DuesPolicy) -> CreatePayment:
    push = due["delivery"] == "push"
    return CreatePayment(
        merchant_id=due["merchant_id"],
        environment=due["environment"],
        idempotency_key=str(due["id"]),
        reference=f"due-{due['id']}",
        amount=due["amount"],
        currency=due["currency"],
        country=due["country"],
        mode="direct" if push else "hosted",
        operator=due["payer_operator"] if push else None,
        customer={"phone": due["payer_phone"], "first_name": due["payer_name"]},
        description=f"{due['type_name']} {due['period']}"[:255],
        expires_in_seconds=900 if push else policy.payment_window_seconds,
        metadata={
            "due_id": str(due["id"]),
            "payment_type_id": str(due["payment_type_id"]),
            "period": due["period"],
        },
    )


async def _mark_issued(pool: asyncpg.Pool, due: asyncpg.Record, payment: PaymentView) -> int:
    async with pool.acquire() as conn, conn.transaction():
        changed = await conn.fetchval(
            "UPDATE due SET status = CASE WHEN status = 'issuing' THEN 'issued' ELSE status END,"
            " payment_id = $2, checkout_url = $3, issued_at = now()"
            " WHERE id = $1 AND issued_at IS NULL RETURNING id",
            due["id"],
            payment.id,
            payment.checkout_url,
        )
        if changed is None:
            return 0
        if payment.mode == "hosted":
            await conn.execute(
                "INSERT INTO checkout_session (payment_id, merchant_id, environment)"
                " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                payment.id,
                due["merchant_id"],
                due["environment"],
            )
        row = await conn.fetchrow(f"{DUE_SELECT} WHERE d.id = $1", due["id"])
        event = DueEvent(
            merchant_id=due["merchant_id"],
            environment=due["environment"],
            payment=payment,
            due=due_body(row),
        )
        await add_to_outbox(conn, EVENTS, event.type, event)
    return 1


async def mark_overdue(pool: asyncpg.Pool, run_on: date, scope: Scope) -> int:
    """Unpaid after its due date: overdue (its payment may still be paid, until it expires)."""
    status = await pool.execute(
        "UPDATE due SET status = 'overdue' WHERE status = 'issued' AND due_date < $3"
        " AND ($1::uuid IS NULL OR merchant_id = $1) AND ($2::text IS NULL OR environment = $2)",
        scope.merchant_id,
        scope.environment,
        run_on,
    )
    return int(status.split()[-1])


async def loop_once(pool: asyncpg.Pool, orchestrator: Orchestrator, policy: DuesPolicy) -> None:
    """The background run for today (UTC), every merchant; skipped if another instance runs."""
    outcome = await run(pool, orchestrator, policy, datetime.now(UTC).date(), wait_for_lock=False)
    if outcome and any(outcome.values()):
        log.info("dues_scheduler_ran", **outcome)
