"""The books' own consistency checks, run by reconciliation: none is expected to fail.

The schema already refuses unbalanced entries; checking again costs little and a report that
says "verified" is worth more than one that says "assumed".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from ledger.domain.reconciliation import BookedMovement


async def consistency_problems(
    conn: asyncpg.Connection,
    day_start: datetime,
    provider: str | None,
    environment: str | None,
    refunds: Sequence[BookedMovement],
) -> list[str]:
    return [
        *await _unbalanced_entries(conn, day_start, provider, environment),
        *await _refunds_not_in_transit(conn, environment),
        *await _refunds_beyond_their_payment(conn, refunds),
    ]


async def _unbalanced_entries(
    conn: asyncpg.Connection, start: datetime, provider: str | None, environment: str | None
) -> list[str]:
    rows = await conn.fetch(
        "SELECT e.id, count(p.id) AS legs, coalesce(sum(p.amount_minor), 0) AS total"
        " FROM journal_entry e LEFT JOIN posting p ON p.entry_id = e.id"
        " WHERE e.effective_at >= $1 AND e.effective_at < $1 + interval '1 day'"
        " AND ($2::text IS NULL OR e.provider = $2) AND ($3::text IS NULL OR e.environment = $3)"
        " GROUP BY e.id HAVING count(p.id) < 2 OR coalesce(sum(p.amount_minor), 0) <> 0",
        start,
        provider,
        environment,
    )
    return [f"entry {r['id']} unbalanced: {r['legs']} postings sum to {r['total']}" for r in rows]


async def _refunds_not_in_transit(conn: asyncpg.Connection, environment: str | None) -> list[str]:
    rows = await conn.fetch(
        "SELECT a.environment, a.currency, sum(p.amount_minor) AS balance"
        " FROM account a JOIN posting p ON p.account_id = a.id"
        " WHERE a.kind = 'refunds' AND ($1::text IS NULL OR a.environment = $1)"
        " GROUP BY a.environment, a.currency HAVING sum(p.amount_minor) <> 0",
        environment,
    )
    return [
        f"refunds transit account {r['environment']}/{r['currency']} holds {r['balance']}"
        for r in rows
    ]


async def _refunds_beyond_their_payment(
    conn: asyncpg.Connection, refunds: Sequence[BookedMovement]
) -> list[str]:
    """Refunds of a payment the books never collected, or beyond what they collected."""
    if not refunds:
        return []
    rows = await conn.fetch(
        "SELECT r.payment_id, r.refunded, pay.id IS NOT NULL AS booked,"
        "       coalesce(pay.gross, 0) AS gross"
        " FROM (SELECT e.payment_id, sum(p.amount_minor) AS refunded"
        "         FROM journal_entry e JOIN posting p ON p.entry_id = e.id"
        "         JOIN account a ON a.id = p.account_id"
        "        WHERE e.kind = 'refund' AND a.kind = 'merchant_available'"
        "          AND e.payment_id = ANY($1::uuid[])"
        "        GROUP BY e.payment_id) r"
        " LEFT JOIN LATERAL ("
        "   SELECT e.id, sum(p.amount_minor) AS gross"
        "     FROM journal_entry e JOIN posting p ON p.entry_id = e.id"
        "     JOIN account a ON a.id = p.account_id"
        "    WHERE e.kind = 'payment' AND e.payment_id = r.payment_id"
        "      AND a.kind = 'psp_clearing' AND p.amount_minor > 0"
        "    GROUP BY e.id) pay ON true",
        list({m.payment_id for m in refunds}),
    )
    problems = []
    for r in rows:
        if not r["booked"]:
            problems.append(f"payment {r['payment_id']} refunded but never booked as collected")
        elif r["refunded"] > r["gross"]:
            problems.append(
                f"payment {r['payment_id']} refunded {r['refunded']} of {r['gross']} collected"
            )
    return problems
