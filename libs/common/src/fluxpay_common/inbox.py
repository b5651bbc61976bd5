"""Inbox: a handled message's id is recorded in the same transaction as its effect."""

from __future__ import annotations

import uuid

import asyncpg


def claim_cte(message_param: int, consumer_param: int) -> str:
    """`claimed AS (...)`: the claim as a CTE, to join a handler's single statement.

    `EXISTS (SELECT 1 FROM claimed)` is true when the message was not handled before.
    """
    return (
        "claimed AS (INSERT INTO inbox_message (message_id, consumer)"
        f" VALUES (${message_param}, ${consumer_param})"
        " ON CONFLICT (message_id) DO NOTHING RETURNING 1)"
    )


async def claim(conn: asyncpg.Connection, message_id: uuid.UUID, consumer: str) -> bool:
    """Record the message as handled; False if it already was (a redelivery: skip it).

    Must run inside the transaction that applies the message's effect, so a crash either
    keeps both or neither.
    """
    return bool(
        await conn.fetchval(
            f"WITH {claim_cte(1, 2)} SELECT EXISTS (SELECT 1 FROM claimed)", message_id, consumer
        )
    )
