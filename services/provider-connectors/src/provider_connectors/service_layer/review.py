"""The review queue: live attempts no PSP answer settled, resolved by an operator.

An operator asks this provider's connector over the broker (`fluxpay-admin provider-reviews`
/ `resolve-review` send `ListProviderReviews` / `ResolveProviderReview` on
`connector.<provider>`): the queue lives in the connectors' schema, which no other service
reads. A resolution is applied exactly like a PSP's word (same status rules, same outbox):
the orchestrator hears a normal provider update, so the payment, the ledger and the
merchant's webhook follow the usual path. The review row keeps who decided, when and why
(the decision's trail); `fluxpay-admin` also writes the gateway's audit log.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, assert_never

import asyncpg

from fluxpay_common.logging import get_logger
from fluxpay_common.messages import (
    ErrorBody,
    ListProviderReviews,
    QueryReply,
    ResolveProviderReview,
    ReviewRequest,
)
from provider_connectors.adapters import repository as repo
from provider_connectors.domain.model import ProviderResult
from provider_connectors.service_layer.engine import apply_result

log = get_logger(__name__)
Outcome = Literal["paid", "failed"]
MANUAL_FAILURE_CODE = "manual_review_failed"
MAX_LISTED = 1000


class ReviewError(ValueError):
    """The review cannot be resolved as asked; `code` names why (docs/errors.md)."""

    code = "review_not_found"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ReviewNotFound(ReviewError):
    code = "review_not_found"


class ReviewAlreadyResolved(ReviewError):
    code = "review_already_resolved"


class ReasonMissing(ReviewError):
    code = "parameter_missing"


async def answer(pool: asyncpg.Pool, provider: str, request: ReviewRequest) -> QueryReply:
    """An operator's request to this provider's connector, answered (or refused) as data."""
    match request:
        case ListProviderReviews():
            return QueryReply(data=await list_open(pool, provider, request.limit))
        case ResolveProviderReview():
            try:
                resolution = await resolve(pool, provider, request)
            except ReviewError as refusal:
                return QueryReply(error=_refusal(refusal))
            return QueryReply(data=resolution)
        case _:
            assert_never(request)


async def list_open(pool: asyncpg.Pool, provider: str, limit: int = 100) -> dict[str, Any]:
    async with pool.acquire() as conn:
        rows = await repo.open_reviews(conn, provider, max(1, min(limit, MAX_LISTED)))
        count = await repo.count_open_reviews(conn, provider)
    return {"provider": provider, "open_count": count, "items": [_item(r) for r in rows]}


async def resolve(
    pool: asyncpg.Pool, provider: str, request: ResolveProviderReview
) -> dict[str, Any]:
    """Close one open review of this provider and apply the operator's outcome."""
    reason = request.reason.strip()
    if not reason or "\x00" in reason:
        raise ReasonMissing("A resolution needs a reason.", param="reason")
    async with pool.acquire() as conn, conn.transaction():
        review = await repo.get_review(conn, request.payment_id, lock=True)
        if review is None or review["provider"] != provider:
            raise ReviewNotFound(
                f"No {provider} review for payment {request.payment_id}.", param="payment_id"
            )
        if review["resolved_at"] is not None:
            raise ReviewAlreadyResolved(
                f"The review of {request.payment_id} is already resolved ({review['resolution']})."
            )
        found = await repo.get_attempt(conn, request.payment_id, lock=True)
        assert found is not None  # the review references the attempt
        status = "completed" if request.outcome == "paid" else "failed"
        await repo.close_review(conn, request.payment_id, status, reason, request.actor)
        result = _operator_result(status, reason, request.psp_reference)
        saved, update = await apply_result(conn, provider, found[0], result)
    log.warning(
        "review_resolved",
        payment_id=str(request.payment_id),
        status=saved.status,
        actor=request.actor,
    )
    return {
        "payment_id": str(request.payment_id),
        "provider": provider,
        "merchant_id": str(review["merchant_id"]),
        "status": saved.status,
        "published": update is not None,
    }


def _operator_result(status: str, reason: str, psp_reference: str | None) -> ProviderResult:
    if status == "completed":
        return ProviderResult(
            status="completed", psp_reference=psp_reference, data={"resolved_by_review": reason}
        )
    return ProviderResult(
        status="failed",
        failure_code=MANUAL_FAILURE_CODE,
        failure_message=f"Marked failed after review: {reason}",
        data={"resolved_by_review": reason},
    )


def _item(row: dict[str, Any]) -> dict[str, Any]:
    """A review as JSON-ready values (ids as text, times in ISO 8601)."""
    return {
        key: str(value) if isinstance(value, uuid.UUID) else _iso(value)
        for key, value in row.items()
    }


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _refusal(refusal: ReviewError) -> ErrorBody:
    return ErrorBody(code=refusal.code, message=str(refusal), param=refusal.param)
