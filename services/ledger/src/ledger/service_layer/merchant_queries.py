"""Merchant reads over request/reply (gateway -> `ledger` queue): balance and transactions.

Answers are JSON-ready bodies in the API's shape; the gateway renders them as they are.
Scoped to the API key's merchant and environment, which the gateway puts on the query.
"""

from __future__ import annotations

from typing import Any, assert_never

import asyncpg

from fluxpay_common.ids import parse_uuid
from fluxpay_common.messages import ErrorBody, LedgerQuery, QueryReply
from ledger import queries
from ledger.queries import BalanceTransaction, TransactionPage, UnknownCursor


async def answer(query: LedgerQuery, pool: asyncpg.Pool) -> QueryReply:
    async with pool.acquire() as conn:
        match query.type:
            case "ledger.balance":
                available = await queries.balances(conn, query.merchant_id, query.environment)
                return QueryReply(data=balance_body(query.environment, available))
            case "ledger.transactions":
                return await _transactions(conn, query)
            case _:
                assert_never(query.type)


async def _transactions(conn: asyncpg.Connection, query: LedgerQuery) -> QueryReply:
    cursor = parse_uuid(query.starting_after) if query.starting_after else None
    if query.starting_after and cursor is None:
        return _bad_cursor(query.starting_after)
    try:
        page = await queries.transactions(
            conn, query.merchant_id, query.environment, query.limit, cursor
        )
    except UnknownCursor:
        return _bad_cursor(query.starting_after or "")
    return QueryReply(data=transactions_body(page))


def balance_body(environment: str, available: dict[str, int]) -> dict[str, Any]:
    return {
        "object": "balance",
        "environment": environment,
        "available": [
            {"currency": currency, "amount": whole_major(minor), "amount_minor": minor}
            for currency, minor in sorted(available.items())
        ],
    }


def transactions_body(page: TransactionPage) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [transaction_body(t) for t in page.data],
        "has_more": page.has_more,
    }


def transaction_body(t: BalanceTransaction) -> dict[str, Any]:
    return {
        "object": "balance_transaction",
        "id": str(t.id),
        "type": t.kind,
        "payment_id": str(t.payment_id),
        "refund_id": str(t.refund_id) if t.refund_id else None,
        "reference": t.reference,
        "currency": t.currency,
        "amount": whole_major(t.amount_minor),
        "amount_minor": t.amount_minor,
        "fee_minor": t.fee_minor,
        "net_minor": t.net_minor,
        "late_success": t.late_success,
        "effective_at": t.effective_at.isoformat(),
        "created_at": t.created_at.isoformat(),
    }


def whole_major(amount_minor: int) -> int:
    """Whole major units, truncated toward zero: a basis-point fee can leave hundredths,
    which only `amount_minor` carries."""
    whole = abs(amount_minor) // 100
    return whole if amount_minor >= 0 else -whole


def _bad_cursor(value: str) -> QueryReply:
    return QueryReply(
        error=ErrorBody(
            code="invalid_starting_after",
            message=f"'{value}' is not a balance transaction of this merchant and environment.",
            param="starting_after",
        )
    )
