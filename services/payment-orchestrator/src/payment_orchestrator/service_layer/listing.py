"""The merchant's lists (request/reply queries): payments and refunds, filtered, one
keyset page at a time. Read-only: no transaction, nothing published."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fluxpay_common.messages import ListFilter, ListPayments, ListRefunds, QueryReply
from payment_orchestrator.domain.errors import InvalidStartingAfter, PaymentNotFound
from payment_orchestrator.domain.listing import Cursor, Listing
from payment_orchestrator.service_layer.dependencies import Dependencies
from payment_orchestrator.views import refund_view

CursorLookup = Callable[..., Awaitable[Cursor | None]]


async def list_payments(query: ListPayments, deps: Dependencies) -> QueryReply:
    async with deps.open_uow(transactional=False) as uow:
        after = await _start(uow.payment_cursor, query)
        found = await uow.list_payments(_listing(query, after))
    return _page([deps.view(p).model_dump(mode="json") for p in found], query.limit)


async def list_refunds(query: ListRefunds, deps: Dependencies) -> QueryReply:
    async with deps.open_uow(transactional=False) as uow:
        payment_id = None
        if query.payment is not None:
            payment = await uow.find(query.merchant_id, query.environment, query.payment)
            if payment is None:
                raise PaymentNotFound(query.payment)
            payment_id = payment.id
        after = await _start(uow.refund_cursor, query)
        found = await uow.list_refunds(_listing(query, after, payment_id))
    views = [refund_view(refund, reference).model_dump(mode="json") for refund, reference in found]
    return _page(views, query.limit)


async def _start(lookup: CursorLookup, query: ListFilter) -> Cursor | None:
    """The cursor of `starting_after`: an object of another merchant, environment or kind
    is refused, never silently read as the start of the list."""
    if query.starting_after is None:
        return None
    cursor = await lookup(query.merchant_id, query.environment, query.starting_after)
    if cursor is None:
        raise InvalidStartingAfter()
    return cursor


def _listing(query: ListFilter, after: Cursor | None, payment_id: Any = None) -> Listing:
    return Listing(
        merchant_id=query.merchant_id,
        environment=query.environment,
        # One more than the page: whether it exists is `has_more`.
        limit=query.limit + 1,
        after=after,
        status=query.status,
        operator=query.operator,
        provider=query.provider,
        country=query.country,
        currency=query.currency,
        reference_prefix=query.reference_prefix,
        created_gte=query.created_gte,
        created_lt=query.created_lt,
        payment_id=payment_id,
    )


def _page(data: list[dict[str, Any]], limit: int) -> QueryReply:
    return QueryReply(data={"object": "list", "data": data[:limit], "has_more": len(data) > limit})
