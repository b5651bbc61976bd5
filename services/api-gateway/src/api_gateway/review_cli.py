"""`fluxpay-admin provider-reviews` / `resolve-review`: the connectors' review queue, asked of
the running connectors.

The gateway imports no other service: it sends `ListProviderReviews` or
`ResolveProviderReview` (request/reply on `connector.<provider>`) and prints the answer. A
listing without `--provider` asks every connector and merges what they say. Exit status: 0
answered, 1 refused (the error on stderr), 2 when a connector asked did not answer (a listing
then still prints what came, naming the silent ones in `unanswered`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson

from fluxpay_common.messages import (
    ErrorBody,
    ListProviderReviews,
    Message,
    QueryReply,
    ResolveProviderReview,
)
from fluxpay_common.rpc import RpcClient, RpcTimeout, RpcUnavailable
from fluxpay_common.topology import COMMANDS, DEFAULT_PROVIDERS, connector_key

EXIT_ANSWERED, EXIT_REFUSED, EXIT_UNANSWERED = 0, 1, 2
COMMAND_NAMES = ("provider-reviews", "resolve-review")
AUDIT_ACTION = "provider_review.resolve"
# Writes the gateway's audit log: (actor, action, details).
Audit = Callable[[str, str, dict[str, Any]], Awaitable[None]]
NoAnswer = (RpcTimeout, RpcUnavailable)


def add_review_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    listing = commands.add_parser(
        "provider-reviews", help="live payments no PSP answer settled, waiting for an operator"
    )
    listing.add_argument("--provider", default=None, help="one provider (default: every one)")
    listing.add_argument("--limit", type=int, default=100, help="items per provider")
    resolve = commands.add_parser(
        "resolve-review", help="settle a reviewed payment as paid or failed (audited)"
    )
    resolve.add_argument("--provider", required=True, help="the review's provider (listed)")
    resolve.add_argument("--payment-id", type=uuid.UUID, required=True)
    resolve.add_argument("--outcome", choices=["paid", "failed"], required=True)
    resolve.add_argument("--reason", required=True, help="why (e.g. the PSP's statement line)")
    resolve.add_argument("--psp-reference", default=None)
    resolve.add_argument("--actor", default="operator", help="who decides (kept with the review)")


async def list_reviews(
    rabbitmq_url: str, providers: tuple[str, ...], limit: int, timeout: float
) -> tuple[int, dict[str, Any]]:
    """Every asked connector's open reviews, merged (oldest first), and the exit status."""
    request = ListProviderReviews(limit=limit)
    answers = await asyncio.gather(
        *(_ask_or_why(rabbitmq_url, p, request, timeout) for p in providers)
    )
    listing: dict[str, Any] = {"open_count": 0, "items": [], "by_provider": {}, "unanswered": []}
    for provider, answer in zip(providers, answers, strict=True):
        if isinstance(answer, str):
            listing["unanswered"].append(provider)
            sys.stderr.write(f"provider-reviews: {provider} did not answer: {answer}\n")
            continue
        listing["open_count"] += answer.data["open_count"]
        listing["by_provider"][provider] = answer.data["open_count"]
        listing["items"].extend(answer.data["items"])
    listing["items"].sort(key=lambda item: item["queued_at"])
    return (EXIT_UNANSWERED if listing["unanswered"] else EXIT_ANSWERED), listing


async def resolve_review(
    rabbitmq_url: str, args: argparse.Namespace, timeout: float, audit: Audit
) -> tuple[int, dict[str, Any]]:
    """Ask the provider's connector to resolve; the admin action is audited unless refused
    (an unanswered request may still be applied: it is audited as `outcome_unknown`)."""
    request = ResolveProviderReview(
        payment_id=args.payment_id,
        outcome=args.outcome,
        reason=args.reason,
        actor=args.actor,
        psp_reference=args.psp_reference,
    )
    actor = f"fluxpay-admin:{args.actor}"
    asked = {
        "payment_id": str(args.payment_id),
        "provider": args.provider,
        "outcome": args.outcome,
        "reason": args.reason,
        "psp_reference": args.psp_reference,
    }
    try:
        reply = await _ask(rabbitmq_url, args.provider, request, timeout)
    except NoAnswer as exc:
        await audit(actor, AUDIT_ACTION, {**asked, "outcome_unknown": True})
        message = f"The {args.provider} connector did not answer ({exc!r}); list the reviews"
        return EXIT_UNANSWERED, _error("service_unavailable", message + " to see the outcome.")
    if reply.error is not None:
        return EXIT_REFUSED, {"error": reply.error.model_dump(exclude_none=True)}
    await audit(actor, AUDIT_ACTION, {**asked, **reply.data})
    return EXIT_ANSWERED, reply.data


def audit_with(pool: asyncpg.Pool) -> Audit:
    async def audit(actor: str, action: str, details: dict[str, Any]) -> None:
        merchant_id = details.get("merchant_id")
        await pool.execute(
            "INSERT INTO audit_log (actor, action, merchant_id, details) VALUES ($1, $2, $3, $4)",
            actor,
            action,
            uuid.UUID(merchant_id) if merchant_id else None,
            details,
        )

    return audit


def print_outcome(status: int, body: dict[str, Any]) -> int:
    """The answer on stdout; a refusal or a silence on stderr as well, for scripts."""
    stream = sys.stderr if "error" in body else sys.stdout
    stream.write(orjson.dumps(body).decode() + "\n")
    return status


def providers_to_ask(provider: str | None) -> tuple[str, ...]:
    return (provider,) if provider else DEFAULT_PROVIDERS


async def _ask_or_why(
    rabbitmq_url: str, provider: str, request: Message, timeout: float
) -> QueryReply | str:
    """The connector's answer, or why none came (an error answer counts as none)."""
    try:
        reply = await _ask(rabbitmq_url, provider, request, timeout)
    except NoAnswer as exc:
        return repr(exc)
    return reply if reply.error is None else f"{reply.error.code}: {reply.error.message}"


async def _ask(rabbitmq_url: str, provider: str, request: Message, timeout: float) -> QueryReply:
    client = RpcClient(rabbitmq_url, COMMANDS.name, connector_key(provider))
    await client.start()
    try:
        reply: QueryReply = await client.call(request, QueryReply, timeout)
        return reply
    finally:
        await client.stop()


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": ErrorBody(code=code, message=message).model_dump(exclude_none=True)}
