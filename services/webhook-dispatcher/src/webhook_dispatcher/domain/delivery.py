"""Delivery rules: where an event goes, which secrets sign it, what follows an attempt.

Pure functions of the delivery's state and the clock, so every rule is tested without a
database or a network.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from fluxpay_common.messages import Environment, MerchantEndpointChanged
from webhook_dispatcher.domain.schedule import Schedule, next_attempt_at

DeliveryStatus = Literal["pending", "succeeded", "dead", "no_endpoint", "endpoint_disabled"]
GONE = 410
NO_ENDPOINT = "no webhook endpoint configured for this merchant"
NO_SECRET = "no webhook signing secret for this merchant"
ENDPOINT_DISABLED = "the webhook endpoint is disabled"


@dataclass(frozen=True)
class SigningSecret:
    sealed: str
    expires_at: datetime | None = None  # None: the current secret


@dataclass(frozen=True)
class Endpoint:
    """A merchant's webhook endpoint in one environment, as replicated from the gateway."""

    url: str | None
    secrets: tuple[SigningSecret, ...]  # newest first
    disabled_at: datetime | None = None
    failing_since: datetime | None = None


@dataclass(frozen=True)
class Target:
    url: str
    is_endpoint: bool  # False for a payment's own `callback_url`


@dataclass(frozen=True)
class Skip:
    """Not sent, for a reason the merchant can read; the event stays replayable."""

    status: DeliveryStatus
    reason: str


@dataclass(frozen=True)
class Wait:
    """The merchant's endpoint record has not arrived yet (it races the first event)."""


def resolve_target(
    callback_url: str | None, endpoint: Endpoint | None, waited: timedelta, max_wait: timedelta
) -> Target | Skip | Wait:
    """Where a delivery goes. `repository._RECORD_EVENTS` applies the same rules, in the
    same order, to a batch of new deliveries (a test holds the two together)."""
    if endpoint is None:
        if waited >= max_wait:
            return Skip("no_endpoint", NO_ENDPOINT)
        return Wait()
    if not endpoint.secrets:
        return Skip("dead", NO_SECRET)
    if callback_url:
        return Target(callback_url, is_endpoint=False)
    if endpoint.url is None:
        return Skip("no_endpoint", NO_ENDPOINT)
    if endpoint.disabled_at is not None:
        return Skip("endpoint_disabled", ENDPOINT_DISABLED)
    return Target(endpoint.url, is_endpoint=True)


def signing_secrets(endpoint: Endpoint, now: datetime) -> tuple[str, ...]:
    """The current secret always; each previous one while its own rotation overlap lasts."""
    return tuple(
        secret.sealed
        for secret in endpoint.secrets
        if secret.expires_at is None or now < secret.expires_at
    )


def secrets_of_change(change: MerchantEndpointChanged) -> tuple[SigningSecret, ...]:
    """The secrets a change carries, each with its expiry (older publishers: one shared)."""
    if change.secrets is not None:
        return tuple(SigningSecret(s.sealed, s.expires_at) for s in change.secrets)
    sealed = change.webhook_secrets_sealed
    overlap = change.secret_overlap_until
    return tuple(
        SigningSecret(token, None if i == 0 else overlap or datetime.min.replace(tzinfo=UTC))
        for i, token in enumerate(sealed)
    )


def environments_of_change(change: MerchantEndpointChanged) -> list[Environment]:
    """A change from before endpoints were per environment applies to both."""
    return [change.environment] if change.environment else ["test", "live"]


@dataclass(frozen=True)
class AttemptOutcome:
    status_code: int | None
    error: str | None = None
    duration_ms: int = 0
    response_excerpt: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Decision:
    status: DeliveryStatus
    next_attempt_at: datetime | None = None
    disable_endpoint: str | None = None


def decide(
    outcome: AttemptOutcome,
    *,
    attempts_made: int,
    schedule: Schedule,
    now: datetime,
    target: Target,
    failing_since: datetime | None,
    disable_after: timedelta,
    rng: random.Random | None = None,
) -> Decision:
    """What follows attempt number `attempts_made`: done, a retry, or dead."""
    if outcome.succeeded:
        return Decision("succeeded")
    disable = _disable_reason(outcome, now, target, failing_since, disable_after)
    if outcome.status_code == GONE or disable is not None:
        return Decision("dead", disable_endpoint=disable)
    retry_at = next_attempt_at(schedule, attempts_made, now, rng)
    if retry_at is None:
        return Decision("dead")
    return Decision("pending", next_attempt_at=retry_at)


def _disable_reason(
    outcome: AttemptOutcome,
    now: datetime,
    target: Target,
    failing_since: datetime | None,
    disable_after: timedelta,
) -> str | None:
    """A merchant's endpoint is disabled on 410 Gone or after days of unbroken failures.

    A payment's own callback_url never disables the merchant's endpoint.
    """
    if not target.is_endpoint:
        return None
    if outcome.status_code == GONE:
        return f"the endpoint answered 410 Gone ({target.url})"
    if failing_since is not None and now - failing_since >= disable_after:
        days = disable_after.total_seconds() / 86400
        return f"every delivery failed for {days:g} days ({target.url})"
    return None
