"""The gateway's audit log: who did what to a merchant's credentials and configuration.

Details never hold a secret nor a URL's credentials (those URLs are refused anyway).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg


async def audit(
    conn: asyncpg.Connection,
    action: str,
    merchant_id: uuid.UUID,
    details: dict[str, Any],
    actor: str = "fluxpay-admin",
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor, action, merchant_id, details) VALUES ($1, $2, $3, $4)",
        actor,
        action,
        merchant_id,
        details,
    )
