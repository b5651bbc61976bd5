"""What the engine stores (attempts, refunds) and what a connector answers (results).

Pure data: no I/O. A connector returns a `ProviderResult`; the engine decides, against the
stored status, whether it is news worth publishing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fluxpay_common.money import to_minor
from provider_connectors.domain.status import AttemptStatus, RefundStatus

# Fields of a result kept in the attempt's `data` so a reply can be rebuilt later.
RESULT_DATA_FIELDS = (
    "failure_code",
    "failure_message",
    "fee_minor",
    "charged_amount_minor",
    "checkout_url",
    "otp_attempts_left",
)
# Marks a refund the PSP acknowledged: from then on only the PSP's word can fail it.
ACCEPTED_BY_PSP = "accepted_by_psp"
# Configuration refusals (`ProviderMisconfigured`) a never-sent refund survives before it fails.
MISCONFIGURED_TRIES = 3


@dataclass(frozen=True)
class Attempt:
    """One payment at one provider (a row of `provider_attempt`)."""

    payment_id: uuid.UUID
    provider: str
    merchant_id: uuid.UUID
    environment: str
    reference: str
    amount: int
    currency: str
    operator: str | None
    phone: str | None
    psp_reference: str | None
    status: AttemptStatus
    next_poll_at: datetime | None
    expires_at: datetime | None
    otp_attempts: int
    created_at: datetime
    updated_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def amount_minor(self) -> int:
        return to_minor(self.amount)

    @property
    def country(self) -> str | None:
        return self.data.get("country")

    @property
    def customer(self) -> Mapping[str, Any]:
        return self.data.get("customer") or {}

    @property
    def description(self) -> str | None:
        return self.data.get("description")

    @property
    def customer_name(self) -> str | None:
        """The API's `first_name` and `last_name` (or a `name` given whole)."""
        customer = self.customer
        parts = [customer.get("first_name"), customer.get("last_name")]
        joined = " ".join(str(p).strip() for p in parts if p and str(p).strip())
        return joined or customer.get("name") or None

    @property
    def customer_email(self) -> str | None:
        return self.customer.get("email") or None


@dataclass(frozen=True)
class RefundAttempt:
    """One refund at one provider (a row of `provider_refund`)."""

    refund_id: uuid.UUID
    payment_id: uuid.UUID
    provider: str
    amount: int
    currency: str
    psp_reference: str | None
    status: RefundStatus
    next_poll_at: datetime | None
    created_at: datetime
    updated_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def amount_minor(self) -> int:
        return to_minor(self.amount)

    @property
    def reached_psp(self) -> bool:
        return bool(self.data.get(ACCEPTED_BY_PSP)) or self.psp_reference is not None


@dataclass(frozen=True)
class ProviderResult:
    """What a PSP said about a payment, already mapped to our vocabulary.

    `status=None` means no news (an unmodelled PSP value, or nothing decided yet): the last
    known status stays and nothing is stored from the PSP's word.
    `next_poll_at=None` means: do not poll this attempt again.
    """

    status: AttemptStatus | None = None
    psp_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    fee_minor: int | None = None
    charged_amount_minor: int | None = None
    checkout_url: str | None = None
    otp_attempts: int | None = None
    otp_attempts_left: int | None = None
    next_poll_at: datetime | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def data_patch(self) -> dict[str, Any]:
        patch = {name: getattr(self, name) for name in RESULT_DATA_FIELDS}
        return {**{k: v for k, v in patch.items() if v is not None}, **self.data}


@dataclass(frozen=True)
class RefundResult:
    status: RefundStatus
    psp_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    next_poll_at: datetime | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallbackEvent:
    """A verified PSP notification, before dedup.

    The attempt is found by `payment_id` when the PSP echoes ours, else by `psp_reference`
    or our `reference`. `recheck` asks the engine to confirm with `fetch_status` before any
    effect (for PSPs whose callbacks are hints, not truth). A refund notification names its
    `refund_id` or `refund_psp_reference` and carries `refund_result`.
    """

    event_id: str
    event_type: str
    payment_id: uuid.UUID | None = None
    psp_reference: str | None = None
    reference: str | None = None
    result: ProviderResult | None = None
    recheck: bool = False
    refund_id: uuid.UUID | None = None
    refund_psp_reference: str | None = None
    refund_result: RefundResult | None = None
