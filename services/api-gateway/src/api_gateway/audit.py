"""The audit log: an append-only record of who changed what, readable by the merchant.

The actor is the API key of the request (or the operator CLI, `admin`). It travels in a
context variable set when a request is authenticated, so operator functions shared by the
CLI and the API (`admin.set_webhook_url`…) record the right actor without threading it
through every signature. Details never hold secrets, nor URLs' credentials or queries.
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from fluxpay_common.logging import get_logger
from fluxpay_common.messages import PaymentView, RefundView

log = get_logger(__name__)


@dataclass(frozen=True)
class Actor:
    """`key_id` None is the operator (`fluxpay-admin`)."""

    key_id: uuid.UUID | None = None
    environment: str | None = None
    request_id: str | None = None

    @property
    def name(self) -> str:
        return "admin" if self.key_id is None else "api_key"


ADMIN = Actor()
_current: contextvars.ContextVar[Actor] = contextvars.ContextVar("audit_actor", default=ADMIN)
SECRET_FIELDS = frozenset({"secret", "api_key", "key", "webhook_secret", "otp", "password"})


def act_as(actor: Actor) -> None:
    _current.set(actor)


def current_actor() -> Actor:
    return _current.get()


def actor_in(environment: str) -> Actor:
    """The current actor (the request's key, or `admin` from the CLI), recorded in the
    environment of what it acted on."""
    actor = current_actor()
    return Actor(actor.key_id, environment, actor.request_id)


def safe_url(url: str) -> str:
    """An URL without user, password, query or fragment (where credentials hide)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact(details: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name, value in details.items():
        if name in SECRET_FIELDS:
            continue
        if isinstance(value, str) and (name == "url" or name.endswith("_url")):
            value = safe_url(value)
        clean[name] = value
    return clean


async def record(
    conn: asyncpg.Connection | asyncpg.Pool,
    action: str,
    merchant_id: uuid.UUID,
    details: dict[str, Any],
    actor: Actor | None = None,
) -> None:
    """One entry, in the caller's transaction when `conn` is a connection in one."""
    who = actor or current_actor()
    await conn.execute(
        "INSERT INTO audit_log (actor, actor_key_id, environment, request_id, action,"
        " merchant_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        who.name,
        who.key_id,
        who.environment,
        who.request_id,
        action,
        merchant_id,
        redact(details),
    )


async def record_after_the_fact(
    pool: asyncpg.Pool, action: str, merchant_id: uuid.UUID, details: dict[str, Any]
) -> None:
    """For an action another service did (a refund, a cancel): its effect is committed, so
    failing to record it must not tell the merchant it failed; the error is logged loudly."""
    try:
        await record(pool, action, merchant_id, details)
    except Exception as exc:  # the action succeeded: say so, and log the gap
        log.error("audit_write_failed", action=action, error=repr(exc))


async def payment_cancelled(
    pool: asyncpg.Pool, merchant_id: uuid.UUID, payment: PaymentView
) -> None:
    details = {"payment_id": str(payment.id), "reference": payment.reference}
    await record_after_the_fact(pool, "payment.cancelled", merchant_id, details)


async def refund_created(pool: asyncpg.Pool, merchant_id: uuid.UUID, refund: RefundView) -> None:
    details = {
        "refund_id": str(refund.id),
        "payment_id": str(refund.payment_id),
        "amount": refund.amount,
        "currency": refund.currency,
    }
    await record_after_the_fact(pool, "refund.created", merchant_id, details)
