"""The list queries on PostgreSQL: the keyset on (created_at, id) with ties on the same
instant, the filters as SQL, and the scope of the merchant and environment."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from fluxpay_common.messages import ListPayments, ListRefunds
from payment_orchestrator.service_layer import handlers

from .commands import create_payment


async def _page(deps: Any, merchant: uuid.UUID, **filters: Any) -> dict[str, Any]:
    reply = await handlers.handle_command(
        ListPayments(merchant_id=merchant, environment="live", **filters), deps
    )
    assert reply.error is None, reply.error
    return dict(reply.data)


async def test_pages_walk_payments_created_at_the_same_instant_once_each(
    deps: Any,
    pool: asyncpg.Pool,
) -> None:
    merchant = uuid.uuid4()
    ids = [await create_payment(deps, merchant) for _ in range(5)]
    # Same created_at for all: only the id orders them.
    await pool.execute(
        "UPDATE orchestrator.payment SET created_at = now() WHERE id = ANY($1::uuid[])", ids
    )
    walked: list[str] = []
    page = await _page(deps, merchant, limit=2)
    while True:
        walked += [p["id"] for p in page["data"]]
        if not page["has_more"]:
            break
        page = await _page(deps, merchant, limit=2, starting_after=walked[-1])
    assert walked == sorted((str(i) for i in ids), key=uuid.UUID, reverse=True)


async def test_filters_and_reference_prefix_run_as_sql(deps: Any) -> None:
    merchant = uuid.uuid4()
    await create_payment(deps, merchant, reference="inv_%-2026-1")
    other = await create_payment(deps, merchant, reference="inv-2026-2")
    # A LIKE wildcard in the prefix is matched as itself.
    assert [p["id"] for p in (await _page(deps, merchant, reference_prefix="inv-"))["data"]] == [
        str(other)
    ]
    assert len((await _page(deps, merchant, reference_prefix="inv"))["data"]) == 2
    found = await _page(deps, merchant, operator="mtn", provider="mtn_momo", currency="XOF")
    assert len(found["data"]) == 2
    assert (await _page(deps, merchant, status="completed"))["data"] == []
    assert (await _page(deps, uuid.uuid4()))["data"] == []


async def test_refund_lists_join_their_payment(deps: Any) -> None:
    merchant = uuid.uuid4()
    reply = await handlers.handle_command(
        ListRefunds(merchant_id=merchant, environment="live", payment="none"), deps
    )
    assert reply.error is not None and reply.error.code == "payment_not_found"
    await create_payment(deps, merchant)
    empty = await handlers.handle_command(
        ListRefunds(merchant_id=merchant, environment="live", country="BJ"), deps
    )
    assert empty.data == {"object": "list", "data": [], "has_more": False}
