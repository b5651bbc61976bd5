"""The synchronous client's resources (`client.payments`, `client.refunds`...)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fluxpay import _calls
from fluxpay import models as m
from fluxpay._pagination import Pager

if TYPE_CHECKING:
    from fluxpay._client import FluxPay


class _Resource:
    def __init__(self, client: FluxPay) -> None:
        self._client = client

    def _pager(self, call: _calls.Call, item: type[Any]) -> Pager[Any]:
        return Pager(lambda c: self._client.request(c, m.ListObject[item]), call)  # type: ignore[valid-type]


class Payments(_Resource):
    def create(
        self,
        *,
        reference: str,
        amount: int,
        currency: str,
        country: str,
        mode: str = "direct",
        operator: str | None = None,
        customer: dict[str, Any] | None = None,
        phone: str | None = None,
        description: str | None = None,
        callback_url: str | None = None,
        expires_in_seconds: int | None = None,
        external_merchant_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> m.Payment:
        """Create a payment (`POST /collect/payments`). `amount` in major units.

        One Idempotency-Key (yours, or a new UUID) is sent on every retry of this call, so a
        retry after a lost answer never creates a second payment.
        """
        body = _calls.payment_body(
            reference=reference,
            amount=amount,
            currency=currency,
            country=country,
            mode=mode,
            operator=operator,
            customer=customer,
            phone=phone,
            description=description,
            callback_url=callback_url,
            expires_in_seconds=expires_in_seconds,
            external_merchant_id=external_merchant_id,
            metadata=metadata,
        )
        return self._client.request(_calls.create_payment(body, idempotency_key), m.Payment)

    def retrieve(self, reference_or_id: str, *, sync: bool = False) -> m.Payment:
        """A payment by its id or your reference; `sync=True` asks the provider first."""
        return self._client.request(_calls.retrieve_payment(reference_or_id, sync), m.Payment)

    def list(
        self,
        *,
        status: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
    ) -> Pager[m.Payment]:
        """Payments newest first (`GET /collect/payments`); iterating walks every page."""
        call = _calls.list_payments(status=status, limit=limit, starting_after=starting_after)
        return self._pager(call, m.Payment)

    def confirm(self, reference_or_id: str, *, otp: str) -> m.Payment:
        """Submit the customer's OTP for a payment `awaiting_otp` (not retried once sent)."""
        return self._client.request(_calls.confirm_payment(reference_or_id, otp), m.Payment)

    def cancel(self, reference_or_id: str, *, reason: str | None = None) -> m.Payment:
        """Cancel an open payment."""
        return self._client.request(_calls.cancel_payment(reference_or_id, reason), m.Payment)


class Refunds(_Resource):
    def create(
        self,
        payment: str,
        *,
        amount: int | None = None,
        reason: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> m.Refund:
        """Refund a completed payment, in full (no `amount`) or in part."""
        body = {"amount": amount, "reason": reason, "metadata": metadata}
        call = _calls.create_refund(payment, body, idempotency_key)
        return self._client.request(call, m.Refund)

    def list(
        self, payment: str, *, limit: int | None = None, starting_after: str | None = None
    ) -> Pager[m.Refund]:
        """A payment's refunds (`GET /collect/payments/{id}/refunds`)."""
        call = _calls.list_refunds(payment, limit=limit, starting_after=starting_after)
        return self._pager(call, m.Refund)


class Operators(_Resource):
    def list(self, *, country: str | None = None) -> list[m.CountryOperators]:
        """The operator catalogue, per country: phone prefixes, whether an OTP is needed."""
        page = self._client.request(
            _calls.list_operators(country), m.ListObject[m.CountryOperators]
        )
        return page.data


class Balance(_Resource):
    def retrieve(self) -> m.Balance:
        """Available balance per currency, in the key's environment."""
        return self._client.request(_calls.retrieve_balance(), m.Balance)

    def list_transactions(
        self, *, limit: int | None = None, starting_after: str | None = None
    ) -> Pager[m.BalanceTransaction]:
        """The journal entries behind the balance, newest first."""
        call = _calls.list_balance_transactions(limit=limit, starting_after=starting_after)
        return self._pager(call, m.BalanceTransaction)


class Events(_Resource):
    def list(
        self,
        *,
        type: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
    ) -> Pager[m.EventSummary]:
        """Webhook events newest first, each with its latest delivery's status."""
        call = _calls.list_events(type=type, limit=limit, starting_after=starting_after)
        return self._pager(call, m.EventSummary)

    def retrieve(self, event_id: str) -> m.Event:
        """One event exactly as sent, with its deliveries and their attempts."""
        return self._client.request(_calls.retrieve_event(event_id), m.Event)

    def replay(self, event_id: str) -> m.EventReplay:
        """Deliver one event again (same id, fresh signature)."""
        return self._client.request(_calls.replay_event(event_id), m.EventReplay)

    def replay_failed(self, *, since: datetime) -> m.EventReplay:
        """Deliver again every event since `since` whose delivery failed."""
        return self._client.request(_calls.replay_failed_events(since), m.EventReplay)


class WebhookEndpoint(_Resource):
    def retrieve(self) -> m.WebhookEndpoint:
        """Your webhook URL and its health."""
        return self._client.request(_calls.retrieve_webhook_endpoint(), m.WebhookEndpoint)

    def update(self, *, url: str) -> m.WebhookEndpoint:
        """Set the webhook URL (re-enables a disabled endpoint)."""
        return self._client.request(_calls.update_webhook_endpoint(url), m.WebhookEndpoint)

    def rotate_secret(self) -> m.WebhookSecret:
        """A new signing secret, shown once; the old one signs too for 24 hours."""
        return self._client.request(_calls.rotate_webhook_secret(), m.WebhookSecret)


class Webhooks(_Resource):
    def send_test_event(self) -> m.EventSummary:
        """A signed sample `collect.payment.completed` (`"test": true`) to your endpoint."""
        return self._client.request(_calls.send_test_event(), m.EventSummary)
