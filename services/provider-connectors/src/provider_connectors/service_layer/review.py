"""The review queue: live attempts no PSP answer settled, resolved by an operator.

An operator's resolution is applied exactly like a PSP's word (same status rules, same
outbox): the orchestrator hears a normal provider update, so the payment, the ledger and
the merchant's webhook follow the usual path. The review row keeps who decided, when and
why (the audit trail of the decision); `fluxpay-admin` also writes its audit log.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from fluxpay_common.logging import get_logger
from provider_connectors.adapters import repository as repo
from provider_connectors.domain.model import ProviderResult
from provider_connectors.service_layer.engine import apply_result

log = get_logger(__name__)
Outcome = Literal["paid", "failed"]
MANUAL_FAILURE_CODE = "manual_review_failed"


class ReviewError(ValueError):
    """The review cannot be resolved as asked (unknown, or already resolved)."""


@dataclass(frozen=True)
class Resolution:
    payment_id: uuid.UUID
    provider: str
    status: str
    published: bool


async def list_open(pool: asyncpg.Pool, provider: str | None, limit: int = 100) -> dict[str, Any]:
    async with pool.acquire() as conn:
        items = await repo.open_reviews(conn, provider, limit)
        count = await repo.count_open_reviews(conn, provider)
    return {"open_count": count, "items": items}


async def resolve(
    pool: asyncpg.Pool,
    payment_id: uuid.UUID,
    outcome: Outcome,
    reason: str,
    actor: str,
    psp_reference: str | None = None,
) -> Resolution:
    if not reason.strip() or "\x00" in reason:
        raise ReviewError("a resolution needs a reason")
    async with pool.acquire() as conn, conn.transaction():
        review = await repo.get_review(conn, payment_id, lock=True)
        if review is None:
            raise ReviewError(f"no review for payment {payment_id}")
        if review["resolved_at"] is not None:
            raise ReviewError(f"the review of {payment_id} is already resolved")
        found = await repo.get_attempt(conn, payment_id, lock=True)
        assert found is not None  # the review references the attempt
        status = "completed" if outcome == "paid" else "failed"
        await repo.close_review(conn, payment_id, status, reason, actor)
        saved, update = await apply_result(
            conn, review["provider"], found[0], _operator_result(status, reason, psp_reference)
        )
    log.warning("review_resolved", payment_id=str(payment_id), status=saved.status, actor=actor)
    return Resolution(payment_id, review["provider"], saved.status, update is not None)


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
