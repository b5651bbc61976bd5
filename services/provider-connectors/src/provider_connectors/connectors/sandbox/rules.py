"""The sandbox's decision table: what the simulated customer does, by phone number.

Pure functions of (attempt, now, delay). The simulated clock lives in the attempt itself
(`data["outcome_at"]`, `next_poll_at`), so a restarted process reaches the same outcome.

| last six digits | outcome |
|---|---|
| `000001`, unlisted | approves after the delay -> completed |
| `000002` | refuses after the delay -> failed, `insufficient_funds` |
| `000003` | never answers -> stays processing |
| `000004` | completes like 000001; every refund fails (`refund_declined`) |
| `000005` | approves the delay after the platform cancels or expires the payment (a late success) |

An OTP operator (`coris`) answers `awaiting_otp`; `123456` confirms (then the number's
outcome applies at once), three wrong codes fail the payment.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from enum import Enum

from provider_connectors.domain.fees import percent_fee_minor
from provider_connectors.domain.model import Attempt, ProviderResult, RefundAttempt, RefundResult

SANDBOX_OTP = "123456"
MAX_OTP_ATTEMPTS = 3
OTP_OPERATORS = frozenset({"coris"})
FEE_BASIS_POINTS = 100  # 1 %
# Used for a 000005 number when the orchestrator gave no expiry.
DEFAULT_EXPIRY = timedelta(minutes=15)
# A 000005 customer answers once the platform's cancel (sent on a cancel or an expiry) has
# reached the PSP, so the success is late for certain; should no cancel come, this long
# after the expiry.
LATE_SUCCESS_FALLBACK = timedelta(minutes=1)


class Scenario(Enum):
    APPROVE = "approve"
    REFUSE = "refuse"
    SILENT = "silent"
    REFUND_DECLINED = "refund_declined"
    LATE_SUCCESS = "late_success"


_SCENARIOS = {
    "000002": Scenario.REFUSE,
    "000003": Scenario.SILENT,
    "000004": Scenario.REFUND_DECLINED,
    "000005": Scenario.LATE_SUCCESS,
}


def scenario_of(phone: str | None) -> Scenario:
    digits = re.sub(r"\D", "", phone or "")
    return _SCENARIOS.get(digits[-6:], Scenario.APPROVE)


def outcome_at(scenario: Scenario, attempt: Attempt, now: datetime, delay: timedelta) -> datetime:
    """When the simulated customer acts; only meaningful for scenarios that answer."""
    if scenario is Scenario.LATE_SUCCESS:
        expires_at = attempt.expires_at or attempt.created_at + DEFAULT_EXPIRY
        return max(expires_at, now) + LATE_SUCCESS_FALLBACK + delay
    return now + delay


def initiate(attempt: Attempt, now: datetime, delay: timedelta) -> ProviderResult:
    if (attempt.operator or "").lower() in OTP_OPERATORS:
        return ProviderResult(status="awaiting_otp", otp_attempts_left=MAX_OTP_ATTEMPTS)
    return _await_customer(attempt, now, delay)


def _await_customer(attempt: Attempt, now: datetime, delay: timedelta) -> ProviderResult:
    scenario = scenario_of(attempt.phone)
    if scenario is Scenario.SILENT:
        return ProviderResult(status="processing", next_poll_at=None)
    decide_at = outcome_at(scenario, attempt, now, delay)
    return ProviderResult(
        status="processing", next_poll_at=decide_at, data={"outcome_at": decide_at.isoformat()}
    )


def fetch_status(attempt: Attempt, now: datetime) -> ProviderResult:
    """The customer's answer once its moment has come; before that, no news."""
    decide_at = attempt.data.get("outcome_at")
    if decide_at is None or attempt.status in ("completed", "failed"):
        return ProviderResult(status=None)
    if now < datetime.fromisoformat(decide_at):
        return ProviderResult(status=None, next_poll_at=datetime.fromisoformat(decide_at))
    if attempt.status == "cancelled" and scenario_of(attempt.phone) is not Scenario.LATE_SUCCESS:
        return ProviderResult(status=None)
    return decided(attempt)


def decided(attempt: Attempt) -> ProviderResult:
    """The final answer of the number's scenario (for scenarios that answer)."""
    if scenario_of(attempt.phone) is Scenario.REFUSE:
        return ProviderResult(
            status="failed",
            failure_code="insufficient_funds",
            failure_message="The customer's wallet balance is insufficient for this payment.",
        )
    return ProviderResult(
        status="completed",
        psp_reference=psp_reference_of(attempt),
        fee_minor=percent_fee_minor(attempt.amount_minor, FEE_BASIS_POINTS),
        charged_amount_minor=attempt.amount_minor,
    )


def psp_reference_of(attempt: Attempt) -> str:
    """Stable per payment, so a replayed decision names the same PSP transaction."""
    return "sbx_" + hashlib.sha256(attempt.payment_id.bytes).hexdigest()[:24]


def submit_otp(attempt: Attempt, otp: str, now: datetime, delay: timedelta) -> ProviderResult:
    if attempt.status != "awaiting_otp":
        return ProviderResult(status=None)
    if otp == SANDBOX_OTP:
        return _confirmed_by_otp(attempt, now, delay)
    used = attempt.otp_attempts + 1
    left = MAX_OTP_ATTEMPTS - used
    if left <= 0:
        return ProviderResult(
            status="failed",
            otp_attempts=used,
            otp_attempts_left=0,
            failure_code="otp_attempts_exceeded",
            failure_message="Too many wrong OTP codes: the payment is refused.",
        )
    return ProviderResult(
        status="awaiting_otp",
        otp_attempts=used,
        otp_attempts_left=left,
        failure_code="otp_invalid",
        failure_message=f"Wrong OTP code; {left} attempt(s) left.",
    )


def _confirmed_by_otp(attempt: Attempt, now: datetime, delay: timedelta) -> ProviderResult:
    """A good code is the customer's approval: the outcome is immediate, except for the
    numbers that never answer or answer late."""
    scenario = scenario_of(attempt.phone)
    if scenario in (Scenario.SILENT, Scenario.LATE_SUCCESS):
        return _await_customer(attempt, now, delay)
    return decided(attempt)


def cancel(attempt: Attempt, now: datetime, delay: timedelta) -> ProviderResult:
    """A cancel stops the customer's prompt, except for 000005 whose customer approves
    the delay after it (money moves anyway: the late success arrives)."""
    if attempt.status in ("completed", "failed", "cancelled"):
        return ProviderResult(status=None)
    if scenario_of(attempt.phone) is Scenario.LATE_SUCCESS and attempt.status != "awaiting_otp":
        decide_at = now + delay
        return ProviderResult(
            status=None, next_poll_at=decide_at, data={"outcome_at": decide_at.isoformat()}
        )
    return ProviderResult(status="cancelled", failure_code="cancelled", next_poll_at=None)


def refund(attempt: Attempt, now: datetime, delay: timedelta) -> RefundResult:
    decide_at = now + delay
    return RefundResult(
        status="pending", next_poll_at=decide_at, data={"outcome_at": decide_at.isoformat()}
    )


def fetch_refund_status(
    attempt: Attempt, refund_attempt: RefundAttempt, now: datetime
) -> RefundResult:
    decide_at = refund_attempt.data.get("outcome_at")
    if decide_at is not None and now < datetime.fromisoformat(decide_at):
        return RefundResult(status="pending", next_poll_at=datetime.fromisoformat(decide_at))
    if scenario_of(attempt.phone) is Scenario.REFUND_DECLINED:
        return RefundResult(
            status="failed",
            failure_code="refund_declined",
            failure_message="The provider declined the refund.",
        )
    return RefundResult(
        status="completed",
        psp_reference="sbx_rf_" + hashlib.sha256(refund_attempt.refund_id.bytes).hexdigest()[:21],
    )
