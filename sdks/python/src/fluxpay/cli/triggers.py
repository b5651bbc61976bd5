"""`fluxpay trigger <event type>`: the sandbox payment (and action) that produces it.

Test keys route every payment to the sandbox, where the phone's last six digits decide the
simulated customer: 000001 approves, 000002 is refused, 000003 never answers, 000004
completes but its refunds fail at the provider.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from fluxpay import FluxPay
from fluxpay.errors import FluxPayError, UnprocessableError
from fluxpay.models import Payment, Refund

APPROVES, REFUSES, SILENT, REFUND_FAILS = "000001", "000002", "000003", "000004"
Say = Callable[[str], None]


@dataclass(frozen=True)
class Scenario:
    phone_suffix: str
    then: str | None = None  # "cancel" or "refund"
    expires_in_seconds: int | None = None
    note: str = ""


SCENARIOS: dict[str, Scenario] = {
    "collect.payment.created": Scenario(APPROVES),
    "collect.payment.processing": Scenario(APPROVES),
    "collect.payment.completed": Scenario(APPROVES),
    "collect.payment.failed": Scenario(REFUSES),
    "collect.payment.cancelled": Scenario(SILENT, then="cancel"),
    "collect.payment.expired": Scenario(
        SILENT, expires_in_seconds=300, note="it expires after 300 s, the shortest expiry"
    ),
    "collect.refund.completed": Scenario(APPROVES, then="refund"),
    "collect.refund.failed": Scenario(REFUND_FAILS, then="refund"),
}


def trigger(client: FluxPay, event_type: str, say: Say, wait_seconds: float = 60) -> Payment:
    scenario = SCENARIOS[event_type]
    payment = client.payments.create(
        reference=f"trigger-{uuid.uuid4()}",
        amount=3000,
        currency="XOF",
        country="BJ",
        operator="mtn",
        phone=f"+22997{scenario.phone_suffix}",
        description=f"fluxpay trigger {event_type}",
        expires_in_seconds=scenario.expires_in_seconds,
        metadata={"fluxpay_trigger": event_type},
    )
    say(f"Created payment {payment.id} ({payment.reference}): {payment.status}")
    if scenario.then == "cancel":
        payment = client.payments.cancel(payment.id, reason="fluxpay trigger")
        say(f"Cancelled payment {payment.id}: {payment.status}")
    elif scenario.then == "refund":
        payment = _wait_completed(client, payment, wait_seconds)
        refund = _refund_half(client, payment, wait_seconds)
        say(f"Refund {refund.id} of {refund.amount} {refund.currency}: {refund.status}")
    note = f" ({scenario.note})" if scenario.note else ""
    say(f"Trigger done: {event_type} will be sent to your endpoint and `fluxpay listen`{note}.")
    return payment


def _refund_half(client: FluxPay, payment: Payment, wait_seconds: float) -> Refund:
    """Half the amount: a refund is paid from the balance this payment credits (net of
    fees), which the ledger books a moment after the payment completes."""
    deadline = time.monotonic() + wait_seconds
    key = str(uuid.uuid4())
    while True:
        try:
            return client.refunds.create(
                payment.id, amount=payment.amount // 2, idempotency_key=key
            )
        except UnprocessableError as exc:
            if exc.code != "insufficient_balance" or time.monotonic() > deadline:
                raise
            key = str(uuid.uuid4())  # the refusal is stored under the key: a new attempt
            time.sleep(0.5)


def _wait_completed(client: FluxPay, payment: Payment, wait_seconds: float) -> Payment:
    deadline = time.monotonic() + wait_seconds
    while payment.status != "completed":
        if time.monotonic() > deadline or payment.status in ("failed", "cancelled", "expired"):
            raise FluxPayError(f"payment {payment.id} is {payment.status}, not completed")
        time.sleep(0.5)
        payment = client.payments.retrieve(payment.id)
    return payment
