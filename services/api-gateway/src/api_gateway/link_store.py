"""Payment links in PostgreSQL: the links, and each payment started through one (a use).

A payer's reservation locks the link's row, then counts its uses in a second statement
(under READ COMMITTED, a statement that waited for the lock would count with the snapshot
it started with, missing the use the lock holder just committed)."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from api_gateway import audit
from api_gateway.errors import ApiError
from api_gateway.payment_links import Link

# A use whose payment was never created (the gateway stopped between the two) holds its
# place this long, then no more: long enough for any orchestrator reply.
ORPHAN_USE = "5 minutes"
_COUNTS = f"""
(SELECT count(*) FROM payment_link_payment u
  WHERE u.link_id = l.id AND u.state = 'completed') AS completed_count,
(SELECT count(*) FROM payment_link_payment u
  WHERE u.link_id = l.id AND u.state = 'open'
    AND (u.payment_id IS NOT NULL OR u.created_at > now() - interval '{ORPHAN_USE}')) AS open_count
"""
_SELECT = f"SELECT l.*, {_COUNTS} FROM payment_link l"
_LINK_FIELDS = tuple(Link.__dataclass_fields__)


def link(row: asyncpg.Record) -> Link:
    return Link(**{name: row[name] for name in _LINK_FIELDS})


def new_slug() -> str:
    return secrets.token_urlsafe(12)


async def create(
    pool: asyncpg.Pool, fields: dict[str, Any], merchant_id: uuid.UUID, env: str
) -> Link:
    """The link and its audit entry in one transaction: a failure leaves neither."""
    link_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO payment_link (id, merchant_id, environment, slug, amount, min_amount,"
            " max_amount, currency, country, description, usage_limit, expires_at, metadata)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            link_id,
            merchant_id,
            env,
            new_slug(),
            fields["amount"],
            fields["min_amount"],
            fields["max_amount"],
            fields["currency"],
            fields["country"],
            fields["description"],
            fields["usage_limit"],
            fields["expires_at"],
            fields["metadata"] or {},
        )
        created = await _by_id(conn, merchant_id, env, link_id)
        assert created is not None
        await audit.record(conn, "payment_link.created", merchant_id, _audit_details(created))
    return created


async def _by_id(
    conn: asyncpg.Connection | asyncpg.Pool, merchant_id: uuid.UUID, env: str, link_id: uuid.UUID
) -> Link | None:
    row = await conn.fetchrow(
        f"{_SELECT} WHERE l.id = $1 AND l.merchant_id = $2 AND l.environment = $3",
        link_id,
        merchant_id,
        env,
    )
    return None if row is None else link(row)


async def by_id(pool: asyncpg.Pool, merchant_id: uuid.UUID, env: str, link_id: str) -> Link:
    try:
        found = await _by_id(pool, merchant_id, env, uuid.UUID(link_id))
    except ValueError:
        found = None
    if found is None:
        raise not_found("link_id")
    return found


async def by_slug(pool: asyncpg.Pool, slug: str) -> Link:
    row = await pool.fetchrow(f"{_SELECT} WHERE l.slug = $1", slug)
    if row is None:
        raise not_found("slug")
    return link(row)


async def page(
    pool: asyncpg.Pool, merchant_id: uuid.UUID, env: str, limit: int, after: str | None
) -> tuple[list[Link], bool]:
    """Newest first, after the link `after` (keyset on created_at, id)."""
    cursor = None
    if after is not None:
        try:
            cursor = await by_id(pool, merchant_id, env, after)
        except ApiError:
            raise ApiError(
                400,
                "invalid_starting_after",
                "'starting_after' is not an object of this list.",
                "starting_after",
            ) from None
    rows = await pool.fetch(
        f"{_SELECT} WHERE l.merchant_id = $1 AND l.environment = $2"
        " AND ($3::timestamptz IS NULL OR (l.created_at, l.id) < ($3, $4::uuid))"
        " ORDER BY l.created_at DESC, l.id DESC LIMIT $5",
        merchant_id,
        env,
        cursor.created_at if cursor else None,
        cursor.id if cursor else None,
        limit + 1,
    )
    return [link(r) for r in rows[:limit]], len(rows) > limit


async def deactivate(pool: asyncpg.Pool, merchant_id: uuid.UUID, env: str, link_id: str) -> Link:
    """Deactivated at once (no new payer); payments under way may still complete."""
    current = await by_id(pool, merchant_id, env, link_id)
    async with pool.acquire() as conn, conn.transaction():
        changed = await conn.fetchval(
            "UPDATE payment_link SET active = false, deactivated_at = now()"
            " WHERE id = $1 AND active RETURNING id",
            current.id,
        )
        if changed is not None:
            await audit.record(
                conn, "payment_link.deactivated", merchant_id, _audit_details(current)
            )
        updated = await _by_id(conn, merchant_id, env, current.id)
    assert updated is not None
    return updated


async def reserve(
    pool: asyncpg.Pool, slug: str, now: datetime, chosen: int | None
) -> tuple[Link, uuid.UUID, int]:
    """Hold one of the link's uses for a new payer: (the link, the use's id, the amount)."""
    async with pool.acquire() as conn, conn.transaction():
        link_id = await conn.fetchval(
            "SELECT id FROM payment_link WHERE slug = $1 FOR UPDATE", slug
        )
        if link_id is None:
            raise not_found("slug")
        row = await conn.fetchrow(f"{_SELECT} WHERE l.id = $1", link_id)
        current = link(row)
        refusal = current.refusal(now)
        if refusal is not None:
            raise refusal
        amount = current.amount_to_pay(chosen)
        use_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO payment_link_payment (id, link_id, amount, state)"
            " VALUES ($1, $2, $3, 'open')",
            use_id,
            link_id,
            amount,
        )
    return current, use_id, amount


async def attach(pool: asyncpg.Pool, use_id: uuid.UUID, payment_id: uuid.UUID) -> None:
    await pool.execute(
        "UPDATE payment_link_payment SET payment_id = $2 WHERE id = $1", use_id, payment_id
    )


async def release(conn: asyncpg.Connection | asyncpg.Pool, use_id: uuid.UUID) -> None:
    """The use's payment will never complete: its place goes back to the link."""
    await conn.execute(
        "UPDATE payment_link_payment SET state = 'released', settled_at = now()"
        " WHERE id = $1 AND state = 'open'",
        use_id,
    )


async def complete(conn: asyncpg.Connection, use_id: uuid.UUID, payment_id: uuid.UUID) -> None:
    """Counted once: a redelivered event finds it completed already. A late success
    after a release counts too (the money moved)."""
    await conn.execute(
        "UPDATE payment_link_payment SET state = 'completed', settled_at = now(),"
        " payment_id = coalesce(payment_id, $2) WHERE id = $1 AND state <> 'completed'",
        use_id,
        payment_id,
    )


async def merchant_name(pool: asyncpg.Pool, merchant_id: uuid.UUID) -> str:
    return str(await pool.fetchval("SELECT name FROM merchant WHERE id = $1", merchant_id) or "")


def not_found(param: str) -> ApiError:
    return ApiError(404, "payment_link_not_found", "No such payment link.", param)


def _audit_details(found: Link) -> dict[str, Any]:
    return {
        "payment_link_id": str(found.id),
        "slug": found.slug,
        "amount": found.amount,
        "min_amount": found.min_amount,
        "max_amount": found.max_amount,
        "currency": found.currency,
        "usage_limit": found.usage_limit,
        "expires_at": found.expires_at.isoformat() if found.expires_at else None,
    }
