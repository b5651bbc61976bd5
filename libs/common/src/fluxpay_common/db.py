"""asyncpg pool per service schema, and the plain-SQL migration runner.

Each service owns one schema. Its migrations are `NNNN_name.sql` files in the service
package; the runner applies the shared outbox/inbox migration and then the service's own,
each once, under an advisory lock so replicas starting together do not race.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from fluxpay_common.logging import get_logger

log = get_logger(__name__)
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
COMMON_MIGRATIONS = resources.files("fluxpay_common") / "migrations"


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Released connections are not reset: the platform sets no session state.

    asyncpg's default reset (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) is
    a round trip on every release. The platform uses only transaction-scoped settings and
    locks (`SET LOCAL`, `pg_advisory_xact_lock`), listeners are removed by their owner, and
    asyncpg still rolls back a connection released inside a transaction.
    """


async def create_pool(
    dsn: str, schema: str, *, min_size: int = 2, max_size: int = 10, service: str = "fluxpay"
) -> asyncpg.Pool:
    """A pool whose connections resolve unqualified names in the service's schema."""
    _check_schema_name(schema)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings={"search_path": schema, "application_name": f"fluxpay-{service}"},
    )
    assert pool is not None
    return pool


def _check_schema_name(schema: str) -> None:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")


def _migration_files(directory: Any) -> list[tuple[str, str]]:
    files = [f for f in directory.iterdir() if f.name.endswith(".sql")]
    return [(f.name, f.read_text(encoding="utf-8")) for f in sorted(files, key=lambda f: f.name)]


async def migrate(pool: asyncpg.Pool, schema: str, migrations: Path | Any | None) -> list[str]:
    """Create the schema and apply pending migrations; returns the names applied now."""
    _check_schema_name(schema)
    plan = [(f"common/{name}", sql) for name, sql in _migration_files(COMMON_MIGRATIONS)]
    if migrations is not None:
        plan += _migration_files(migrations)
    applied_now: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(f"SET LOCAL search_path TO {schema}")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migration ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migration")}
        for name, sql in plan:
            if name in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migration (name) VALUES ($1)", name)
            applied_now.append(name)
    if applied_now:
        log.info("migrations_applied", schema=schema, migrations=applied_now)
    return applied_now
