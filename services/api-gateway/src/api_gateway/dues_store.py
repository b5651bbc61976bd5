"""Payment types, their payers and the dues issued to them, in PostgreSQL, scoped to the
merchant and environment of the key that asks."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import asyncpg

from api_gateway import audit
from api_gateway.errors import ApiError

DUE_SELECT = (
    "SELECT d.*, p.name AS payer_name, p.phone AS payer_phone, p.operator AS payer_operator"
    " FROM due d JOIN payer p ON p.id = d.payer_id"
)

# The same, for `page` (the listed table is `x`).
DUE_LIST_SELECT = (
    "SELECT x.*, p.name AS payer_name, p.phone AS payer_phone, p.operator AS payer_operator"
    " FROM due x JOIN payer p ON p.id = x.payer_id"
)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def not_found(code: str, what: str, param: str) -> ApiError:
    return ApiError(404, code, f"No such {what}.", param)


def type_body(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "object": "payment_type",
        "id": str(row["id"]),
        "name": row["name"],
        "amount": row["amount"],
        "currency": row["currency"],
        "country": row["country"],
        "recurring": row["recurrence"] is not None,
        "interval": row["recurrence"],
        "due_day": row["due_day"],
        "due_date": row["due_date"].isoformat() if row["due_date"] else None,
        "delivery": row["delivery"],
        "active": row["active"],
        "environment": row["environment"],
        "created_at": row["created_at"].isoformat(),
    }


def payer_body(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "object": "payer",
        "id": str(row["id"]),
        "payment_type_id": str(row["payment_type_id"]),
        "name": row["name"],
        "phone": row["phone"],
        "operator": row["operator"],
        "active": row["active"],
        "enrolled_at": row["enrolled_at"].isoformat(),
    }


def due_body(row: asyncpg.Record) -> dict[str, Any]:
    def when(name: str) -> str | None:
        return row[name].isoformat() if row[name] else None

    return {
        "object": "collect.due",
        "id": str(row["id"]),
        "payment_type_id": str(row["payment_type_id"]),
        "payer": {
            "id": str(row["payer_id"]),
            "name": row["payer_name"],
            "phone": row["payer_phone"],
            "operator": row["payer_operator"],
        },
        "period": row["period"],
        "due_date": row["due_date"].isoformat(),
        "amount": row["amount"],
        "currency": row["currency"],
        "status": row["status"],
        "payment_id": str(row["payment_id"]) if row["payment_id"] else None,
        "checkout_url": row["checkout_url"],
        "environment": row["environment"],
        "created_at": when("created_at"),
        "issued_at": when("issued_at"),
        "paid_at": when("paid_at"),
    }


async def create_type(
    pool: asyncpg.Pool, merchant_id: uuid.UUID, env: str, fields: dict[str, Any]
) -> asyncpg.Record:
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "INSERT INTO payment_type (id, merchant_id, environment, name, amount, currency,"
            " country, recurrence, due_day, due_date, delivery)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *",
            uuid.uuid4(),
            merchant_id,
            env,
            fields["name"],
            fields["amount"],
            fields["currency"],
            fields["country"],
            fields["interval"],
            fields["due_day"],
            fields["due_date"],
            fields["delivery"],
        )
        await audit.record(conn, "payment_type.created", merchant_id, _type_audit(row))
    return row


async def get_type(
    conn: asyncpg.Pool | asyncpg.Connection, merchant_id: uuid.UUID, env: str, type_id: str
) -> asyncpg.Record:
    wanted = _uuid(type_id)
    row = None
    if wanted is not None:
        row = await conn.fetchrow(
            "SELECT * FROM payment_type WHERE id = $1 AND merchant_id = $2 AND environment = $3",
            wanted,
            merchant_id,
            env,
        )
    if row is None:
        raise not_found("payment_type_not_found", "payment type", "payment_type_id")
    return row


async def deactivate_type(
    pool: asyncpg.Pool, merchant_id: uuid.UUID, env: str, type_id: str
) -> asyncpg.Record:
    """No new dues are issued for it; dues already issued stay payable."""
    async with pool.acquire() as conn, conn.transaction():
        current = await get_type(conn, merchant_id, env, type_id)
        row = await conn.fetchrow(
            "UPDATE payment_type SET active = false WHERE id = $1 RETURNING *", current["id"]
        )
        if current["active"]:
            await audit.record(conn, "payment_type.deactivated", merchant_id, _type_audit(row))
    return row


async def page(
    pool: asyncpg.Pool,
    table: str,
    where: str,
    args: list[Any],
    limit: int,
    after: str | None,
    select: str | None = None,
) -> tuple[list[asyncpg.Record], bool]:
    """Newest first on (created_at, id) of `table` (aliased `x`), after the row `after`."""
    cursor = None
    if after is not None:
        wanted = _uuid(after)
        if wanted is not None:
            cursor = await pool.fetchrow(
                f"SELECT x.created_at, x.id FROM {table} x WHERE x.id = ${len(args) + 1}"
                f" AND {where}",
                *args,
                wanted,
            )
        if cursor is None:
            raise ApiError(
                400,
                "invalid_starting_after",
                "'starting_after' is not an object of this list.",
                "starting_after",
            )
    n = len(args)
    rows = await pool.fetch(
        f"{select or f'SELECT x.* FROM {table} x'} WHERE {where}"
        f" AND (${n + 1}::timestamptz IS NULL OR (x.created_at, x.id) < (${n + 1}, ${n + 2}::uuid))"
        f" ORDER BY x.created_at DESC, x.id DESC LIMIT ${n + 3}",
        *args,
        cursor["created_at"] if cursor else None,
        cursor["id"] if cursor else None,
        limit + 1,
    )
    return rows[:limit], len(rows) > limit


async def enroll(
    pool: asyncpg.Pool, merchant_id: uuid.UUID, env: str, type_id: str, fields: dict[str, Any]
) -> asyncpg.Record:
    async with pool.acquire() as conn, conn.transaction():
        payment_type = await get_type(conn, merchant_id, env, type_id)
        row = await conn.fetchrow(
            "INSERT INTO payer (id, payment_type_id, name, phone, operator)"
            " VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (payment_type_id, phone) DO NOTHING RETURNING *",
            uuid.uuid4(),
            payment_type["id"],
            fields["name"],
            fields["phone"],
            fields["operator"],
        )
        if row is None:
            raise ApiError(
                409,
                "payer_already_enrolled",
                "A payer with this phone number is already enrolled in this payment type.",
                "phone",
            )
        details = {"payment_type_id": str(payment_type["id"]), "payer_id": str(row["id"])}
        await audit.record(conn, "payer.enrolled", merchant_id, details)
    return row


async def unenroll(
    pool: asyncpg.Pool, merchant_id: uuid.UUID, env: str, type_id: str, payer_id: str
) -> asyncpg.Record:
    async with pool.acquire() as conn, conn.transaction():
        payment_type = await get_type(conn, merchant_id, env, type_id)
        wanted = _uuid(payer_id)
        row = None
        if wanted is not None:
            row = await conn.fetchrow(
                "UPDATE payer SET active = false WHERE id = $1 AND payment_type_id = $2"
                " RETURNING *",
                wanted,
                payment_type["id"],
            )
        if row is None:
            raise not_found("payer_not_found", "payer", "payer_id")
        details = {"payment_type_id": str(payment_type["id"]), "payer_id": str(row["id"])}
        await audit.record(conn, "payer.removed", merchant_id, details)
    return row


async def get_due(pool: asyncpg.Pool, merchant_id: uuid.UUID, env: str, due_id: str) -> Any:
    wanted = _uuid(due_id)
    row = None
    if wanted is not None:
        row = await pool.fetchrow(
            f"{DUE_SELECT} WHERE d.id = $1 AND d.merchant_id = $2 AND d.environment = $3",
            wanted,
            merchant_id,
            env,
        )
    if row is None:
        raise not_found("due_not_found", "due", "due_id")
    return row


async def cancel_due(pool: asyncpg.Pool, merchant_id: uuid.UUID, env: str, due_id: str) -> Any:
    current = await get_due(pool, merchant_id, env, due_id)
    async with pool.acquire() as conn, conn.transaction():
        changed = await conn.fetchval(
            "UPDATE due SET status = 'cancelled' WHERE id = $1"
            " AND status IN ('issuing', 'issued', 'overdue') RETURNING id",
            current["id"],
        )
        if changed is None:
            raise ApiError(
                409, "due_not_cancellable", f"This due is {current['status']}.", "due_id"
            )
        details = {"due_id": str(current["id"]), "period": current["period"]}
        await audit.record(conn, "due.cancelled", merchant_id, details)
    return await get_due(pool, merchant_id, env, due_id)


async def mark_paid(conn: asyncpg.Connection, due_id: uuid.UUID) -> None:
    """Paid, whatever it was: the money moved (even for a due cancelled meanwhile)."""
    await conn.execute(
        "UPDATE due SET status = 'paid', paid_at = now() WHERE id = $1 AND status <> 'paid'",
        due_id,
    )


def _type_audit(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "payment_type_id": str(row["id"]),
        "name": row["name"],
        "amount": row["amount"],
        "currency": row["currency"],
        "interval": row["recurrence"],
        "due_day": row["due_day"],
        "due_date": row["due_date"].isoformat() if isinstance(row["due_date"], date) else None,
        "delivery": row["delivery"],
    }
