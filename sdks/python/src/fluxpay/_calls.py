"""Each API method as the `Call` it makes (path, parameters, body, idempotency): written
once here, sent by the sync or the async client."""

from __future__ import annotations

from datetime import date, datetime
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
    return Call("GET", "/collect/payments", params=_query(filters))


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


def list_refunds(payment: str | None, **filters: Any) -> Call:
    if payment is None:
        return Call("GET", "/collect/refunds", params=_query(filters))
    return Call("GET", f"/collect/payments/{_segment(payment)}/refunds", params=_query(filters))


def _query(filters: dict[str, Any]) -> dict[str, Any]:
    """Query parameters; dates as ISO 8601."""
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in without_none(filters).items()
    }


def create_api_key(body: dict[str, Any]) -> Call:
    # Twice would make two keys (there is no Idempotency-Key on keys).
    return Call("POST", "/api_keys", json=_json(body), replay_safe=False)


def list_api_keys(**page: Any) -> Call:
    return Call("GET", "/api_keys", params=without_none(page))


def revoke_api_key(key_id: str) -> Call:
    return Call("DELETE", f"/api_keys/{_segment(key_id)}")


def rotate_api_key(key_id: str, expires_in: int | None) -> Call:
    body = without_none({"expires_in": expires_in})
    return Call("POST", f"/api_keys/{_segment(key_id)}/rotate", json=body, replay_safe=False)


def create_payment_link(body: dict[str, Any]) -> Call:
    return Call("POST", "/payment_links", json=_json(body), replay_safe=False)


def list_payment_links(**page: Any) -> Call:
    return Call("GET", "/payment_links", params=without_none(page))


def retrieve_payment_link(link_id: str) -> Call:
    return Call("GET", f"/payment_links/{_segment(link_id)}")


def deactivate_payment_link(link_id: str) -> Call:
    return Call("DELETE", f"/payment_links/{_segment(link_id)}")


def create_payment_type(body: dict[str, Any]) -> Call:
    return Call("POST", "/payment_types", json=_json(body), replay_safe=False)


def list_payment_types(**page: Any) -> Call:
    return Call("GET", "/payment_types", params=without_none(page))


def retrieve_payment_type(type_id: str) -> Call:
    return Call("GET", f"/payment_types/{_segment(type_id)}")


def deactivate_payment_type(type_id: str) -> Call:
    return Call("DELETE", f"/payment_types/{_segment(type_id)}")


def enroll_payer(type_id: str, body: dict[str, Any]) -> Call:
    path = f"/payment_types/{_segment(type_id)}/payers"
    return Call("POST", path, json=_json(body), replay_safe=False)


def list_payers(type_id: str, **page: Any) -> Call:
    return Call("GET", f"/payment_types/{_segment(type_id)}/payers", params=without_none(page))


def remove_payer(type_id: str, payer_id: str) -> Call:
    return Call("DELETE", f"/payment_types/{_segment(type_id)}/payers/{_segment(payer_id)}")


def list_dues(**filters: Any) -> Call:
    return Call("GET", "/dues", params=without_none(filters))


def retrieve_due(due_id: str) -> Call:
    return Call("GET", f"/dues/{_segment(due_id)}")


def cancel_due(due_id: str) -> Call:
    # A second cancel answers 409: not retried once it may have arrived.
    return Call("POST", f"/dues/{_segment(due_id)}/cancel", replay_safe=False)


def run_dues(on: date) -> Call:
    # A second run issues nothing the first did (one due per payer and period).
    return Call("POST", "/dues/run", json={"date": on.isoformat()})


def _json(body: dict[str, Any]) -> dict[str, Any]:
    """A body without the fields left out (the API refuses null for an omitted field)."""
    return {
        name: value.isoformat() if isinstance(value, datetime | date) else value
        for name, value in without_none(body).items()
    }


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
