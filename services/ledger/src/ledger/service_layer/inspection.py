"""`fluxpay-admin inspect`, the ledger's part: the payment's journal entries with their
postings, and its refund holds."""

from __future__ import annotations

import asyncpg

from fluxpay_common.inspection import rows_as_json
from fluxpay_common.messages import LedgerInspect, QueryReply


async def inspect(request: LedgerInspect, pool: asyncpg.Pool) -> QueryReply:
    async with pool.acquire() as conn:
        entries = await rows_as_json(
            conn,
            "SELECT e.*, (SELECT json_agg(row_to_json(p) ORDER BY p.id) FROM posting p"
            " WHERE p.entry_id = e.id) AS postings"
            " FROM journal_entry e WHERE e.payment_id = $1 ORDER BY e.id",
            request.payment_id,
        )
        holds = await rows_as_json(
            conn, "SELECT * FROM refund_hold WHERE payment_id = $1", request.payment_id
        )
    return QueryReply(data={"journal_entries": entries, "refund_holds": holds})
