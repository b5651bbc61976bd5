"""Attempt statuses at a provider and the one rule deciding whether a PSP's news applies.

`pending` is ours alone: the attempt is recorded (its idempotency key persisted) but the
PSP has not yet confirmed it took the request. It is never published.
"""

from __future__ import annotations

from typing import Literal, assert_never

AttemptStatus = Literal[
    "pending",
    "processing",
    "awaiting_otp",
    "awaiting_payment",
    "completed",
    "failed",
    "cancelled",
]
RefundStatus = Literal["pending", "completed", "failed"]


def is_terminal(status: AttemptStatus) -> bool:
    match status:
        case "completed" | "failed" | "cancelled":
            return True
        case "pending" | "processing" | "awaiting_otp" | "awaiting_payment":
            return False
        case _:
            assert_never(status)


def is_publishable(status: AttemptStatus) -> bool:
    """Whether the orchestrator hears of this status (`pending` is internal)."""
    return status != "pending"


def should_apply(current: AttemptStatus, new: AttemptStatus) -> bool:
    """Whether a status reported by the PSP replaces the stored one.

    A confirmed success always applies, even after a local cancel or a failure report:
    money moved, so it must be recorded and booked. Otherwise terminal states stay
    terminal and nothing moves back to `pending`.
    """
    if new == current:
        return False
    if new == "completed":
        return True
    return not (is_terminal(current) or new == "pending")


def refund_should_apply(current: RefundStatus, new: RefundStatus) -> bool:
    return current == "pending" and new != "pending"
