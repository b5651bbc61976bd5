"""Round trips to PostgreSQL per payment, from `pg_stat_statements` (when the server loads
it: `shared_preload_libraries = 'pg_stat_statements'`), counted for the bench's own database
only, over the end-to-end window: the measure behind most of the platform's CPU (every
statement costs a round trip in the service and a parse/plan/execute in a backend)."""

from __future__ import annotations

import re

import asyncpg

Counts = dict[str, int]


async def snapshot(dsn: str) -> Counts | None:
    """Calls per statement text in this database; None when the extension is not there."""
    conn = await asyncpg.connect(dsn)
    try:
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            rows = await conn.fetch(
                "SELECT query, calls FROM pg_stat_statements"
                " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        except asyncpg.PostgresError:
            return None
    finally:
        await conn.close()
    counts: Counts = {}
    for row in rows:
        text = re.sub(r"\s+", " ", row["query"]).strip()
        counts[text] = counts.get(text, 0) + row["calls"]
    return counts


def per_payment(
    before: Counts | None, after: Counts | None, payments: int
) -> list[tuple[str, float]]:
    """(statement, calls per payment), most frequent first; the total first of all."""
    if before is None or after is None or payments <= 0:
        return []
    deltas = {q: n - before.get(q, 0) for q, n in after.items()}
    deltas = {q: n for q, n in deltas.items() if n > 0 and "pg_stat_statements" not in q}
    rows = sorted(deltas.items(), key=lambda item: -item[1])
    return [("total", sum(deltas.values()) / payments)] + [(q, n / payments) for q, n in rows]
