"""What a service answers `fluxpay-admin inspect` with: rows of its own schema as JSON.

Each service inspects only its own tables, through its own request/reply door; the rows
go out whole (`row_to_json`), so a column added later shows up without touching this.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson


async def rows_as_json(conn: asyncpg.Connection, sql: str, *args: Any) -> list[dict[str, Any]]:
    """The rows `sql` selects, as JSON objects (timestamps ISO 8601, bytea as hex)."""
    text = await conn.fetchval(
        f"SELECT coalesce(json_agg(row_to_json(x)), '[]'::json)::text FROM ({sql}) x", *args
    )
    loaded: list[dict[str, Any]] = orjson.loads(text)
    return loaded
