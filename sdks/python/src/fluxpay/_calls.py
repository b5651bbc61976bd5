"""Each API method as the `Call` it makes (path, parameters, body, idempotency): written
once here, sent by the sync or the async client."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from fluxpay._base import Call, new_idempotency_key, without_none


def _segment(value: str) -> str:
    """A path segment: a merchant reference may contain '/', '?' or '#'."""
    return quote(str(value), safe="")


def create_payment(body: dict[str, Any], idempotency_key: str | None) -> Call:
    # The key is fixed here, once per create, so every retry of this call carries it.
    return Call(
        "POST",
        "/collect/payments",
        json=without_none(body),
        idempotency_key=idempotency_key or new_idempotency_key(),
    )


def retrieve_payment(reference_or_id: str, sync: bool = False) -> Call:
    params = {"sync": "true"} if sync else None
    return Call("GET", f"/collect/payments/{_segment(reference_or_id)}", params=params)


def list_payments(**filters: Any) -> Call:
    return Call("GET", "/collect/payments", params=without_none(filters))


def confirm_payment(reference_or_id: str, otp: str) -> Call:
    # Not replay-safe: a confirmation whose answer was lost may have counted.
    return Call(
        "POST",
        f"/collect/payments/{_segment(reference_or_id)}/confirm",
        json={"otp": otp},
        replay_safe=False,
    )


def cancel_payment(reference_or_id: str, reason: str | None) -> Call:
    # Cancelling twice ends in the same state (the second may answer 409).
    return Call(
        "POST",
        f"/collect/payments/{_segment(reference_or_id)}/cancel",
        json=without_none({"reason": reason}),
    )


def create_refund(payment: str, body: dict[str, Any], idempotency_key: str | None) -> Call:
    return Call(
        "POST",
        f"/collect/payments/{_segment(payment)}/refunds",
        json=without_none(body),
        idempotency_key=idempotency_key or new_idempotency_key(),
    )


def list_refunds(payment: str, **page: Any) -> Call:
    return Call("GET", f"/collect/payments/{_segment(payment)}/refunds", params=without_none(page))


def list_operators(country: str | None) -> Call:
    return Call("GET", "/collect/payments/operators/", params=without_none({"country": country}))


def retrieve_balance() -> Call:
    return Call("GET", "/balance")


def list_balance_transactions(**page: Any) -> Call:
    return Call("GET", "/balance/transactions", params=without_none(page))


def list_events(**filters: Any) -> Call:
    return Call("GET", "/events", params=without_none(filters))


def retrieve_event(event_id: str) -> Call:
    return Call("GET", f"/events/{_segment(event_id)}")


def replay_event(event_id: str) -> Call:
    # The dispatcher brings a pending delivery forward rather than doubling it.
    return Call("POST", f"/events/{_segment(event_id)}/replay")


def replay_failed_events(since: datetime) -> Call:
    return Call("POST", "/events/replay", json={"since": since.isoformat()})


def send_test_event() -> Call:
    return Call("POST", "/webhooks/test", replay_safe=False)


def retrieve_webhook_endpoint() -> Call:
    return Call("GET", "/webhook_endpoint")


def update_webhook_endpoint(url: str) -> Call:
    return Call("PUT", "/webhook_endpoint", json={"url": url})


def rotate_webhook_secret() -> Call:
    # Twice would rotate twice: the first new secret would be lost.
    return Call("POST", "/webhook_endpoint/rotate_secret", replay_safe=False)


def payment_body(
    *,
    reference: str,
    amount: int,
    currency: str,
    country: str,
    mode: str,
    operator: str | None,
    customer: dict[str, Any] | None,
    phone: str | None,
    **optional: Any,
) -> dict[str, Any]:
    """The `CollectPaymentCreate` body; `phone=` is a shortcut for `customer={"phone": ...}`."""
    if phone is not None:
        customer = {**(customer or {}), "phone": phone}
    return {
        "reference": reference,
        "amount": amount,
        "currency": currency,
        "country": country,
        "mode": mode,
        "operator": operator,
        "customer": customer,
        **optional,
    }
