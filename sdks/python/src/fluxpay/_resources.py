"""The synchronous client's resources (`client.payments`, `client.refunds`...)."""

from __future__ import annotations

from datetime import date, datetime
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
        operator: str | None = None,
        provider: str | None = None,
        country: str | None = None,
        currency: str | None = None,
        created_gte: datetime | None = None,
        created_lt: datetime | None = None,
        reference_prefix: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
    ) -> Pager[m.Payment]:
        """Payments newest first (`GET /collect/payments`), filtered; iterating walks every
        page. `created_gte` is included, `created_lt` excluded."""
        call = _calls.list_payments(
            status=status,
            operator=operator,
            provider=provider,
            country=country,
            currency=currency,
            created_gte=created_gte,
            created_lt=created_lt,
            reference_prefix=reference_prefix,
            limit=limit,
            starting_after=starting_after,
        )
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
        self,
        payment: str | None = None,
        *,
        status: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
    ) -> Pager[m.Refund]:
        """Refunds newest first: one payment's (`GET /collect/payments/{id}/refunds`) or
        all of them (`GET /collect/refunds`)."""
        call = _calls.list_refunds(
            payment, status=status, limit=limit, starting_after=starting_after
        )
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


class ApiKeys(_Resource):
    def create(
        self, *, name: str, role: str = "full", expires_at: datetime | None = None
    ) -> m.ApiKey:
        """A new key of this key's environment; its `secret` is shown this once."""
        body = {"name": name, "role": role, "expires_at": expires_at}
        return self._client.request(_calls.create_api_key(body), m.ApiKey)

    def list(
        self, *, limit: int | None = None, starting_after: str | None = None
    ) -> Pager[m.ApiKey]:
        """This environment's keys, newest first (never their secrets)."""
        call = _calls.list_api_keys(limit=limit, starting_after=starting_after)
        return self._pager(call, m.ApiKey)

    def revoke(self, key_id: str) -> m.ApiKey:
        """Revoked at once: its next request answers 401."""
        return self._client.request(_calls.revoke_api_key(key_id), m.ApiKey)

    def rotate(self, key_id: str, *, expires_in: int | None = None) -> m.ApiKey:
        """A successor (same name and role, `secret` shown once); the old key works
        `expires_in` seconds more (default 24 h) and is in `previous_key`."""
        return self._client.request(_calls.rotate_api_key(key_id, expires_in), m.ApiKey)


class PaymentLinks(_Resource):
    def create(
        self,
        *,
        currency: str,
        country: str,
        amount: int | None = None,
        min_amount: int | None = None,
        max_amount: int | None = None,
        description: str | None = None,
        usage_limit: int | None = None,
        expires_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> m.PaymentLink:
        """A link to pay you: a fixed `amount`, or the payer chooses within the bounds;
        `usage_limit=1` for a single-use link. Send the payer its `url`."""
        body = {
            "currency": currency,
            "country": country,
            "amount": amount,
            "min_amount": min_amount,
            "max_amount": max_amount,
            "description": description,
            "usage_limit": usage_limit,
            "expires_at": expires_at,
            "metadata": metadata,
        }
        return self._client.request(_calls.create_payment_link(body), m.PaymentLink)

    def list(
        self, *, limit: int | None = None, starting_after: str | None = None
    ) -> Pager[m.PaymentLink]:
        """Your links, newest first."""
        call = _calls.list_payment_links(limit=limit, starting_after=starting_after)
        return self._pager(call, m.PaymentLink)

    def retrieve(self, link_id: str) -> m.PaymentLink:
        """A link, with its uses (`usage_count`) and whether it `can_pay`."""
        return self._client.request(_calls.retrieve_payment_link(link_id), m.PaymentLink)

    def deactivate(self, link_id: str) -> m.PaymentLink:
        """No new payer from now on (payments under way may still complete)."""
        return self._client.request(_calls.deactivate_payment_link(link_id), m.PaymentLink)


class PaymentTypes(_Resource):
    def create(
        self,
        *,
        name: str,
        amount: int,
        currency: str,
        country: str,
        recurring: bool,
        interval: str | None = None,
        due_day: int | None = None,
        due_date: date | None = None,
        delivery: str | None = None,
    ) -> m.PaymentType:
        """What payers owe: recurring (`interval` "monthly" on `due_day` 1-28, or "weekly"
        on ISO day 1-7) or one-off (`due_date`); `delivery` "link" (default) or "push"."""
        body = {
            "name": name,
            "amount": amount,
            "currency": currency,
            "country": country,
            "recurring": recurring,
            "interval": interval,
            "due_day": due_day,
            "due_date": due_date,
            "delivery": delivery,
        }
        return self._client.request(_calls.create_payment_type(body), m.PaymentType)

    def list(
        self, *, limit: int | None = None, starting_after: str | None = None
    ) -> Pager[m.PaymentType]:
        """Your payment types, newest first."""
        call = _calls.list_payment_types(limit=limit, starting_after=starting_after)
        return self._pager(call, m.PaymentType)

    def retrieve(self, type_id: str) -> m.PaymentType:
        return self._client.request(_calls.retrieve_payment_type(type_id), m.PaymentType)

    def deactivate(self, type_id: str) -> m.PaymentType:
        """No new dues are issued for it; those issued stay payable."""
        return self._client.request(_calls.deactivate_payment_type(type_id), m.PaymentType)

    def enroll_payer(self, type_id: str, *, name: str, phone: str, operator: str) -> m.Payer:
        """A payer of this type (one per phone number)."""
        body = {"name": name, "phone": phone, "operator": operator}
        return self._client.request(_calls.enroll_payer(type_id, body), m.Payer)

    def list_payers(
        self, type_id: str, *, limit: int | None = None, starting_after: str | None = None
    ) -> Pager[m.Payer]:
        call = _calls.list_payers(type_id, limit=limit, starting_after=starting_after)
        return self._pager(call, m.Payer)

    def remove_payer(self, type_id: str, payer_id: str) -> m.Payer:
        """No further dues for this payer."""
        return self._client.request(_calls.remove_payer(type_id, payer_id), m.Payer)


class Dues(_Resource):
    def list(
        self,
        *,
        payment_type_id: str | None = None,
        status: str | None = None,
        period: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
    ) -> Pager[m.Due]:
        """Dues newest first; `status="paid"` lists who paid."""
        call = _calls.list_dues(
            payment_type_id=payment_type_id,
            status=status,
            period=period,
            limit=limit,
            starting_after=starting_after,
        )
        return self._pager(call, m.Due)

    def retrieve(self, due_id: str) -> m.Due:
        return self._client.request(_calls.retrieve_due(due_id), m.Due)

    def cancel(self, due_id: str) -> m.Due:
        """Cancel an unpaid due (and its payment)."""
        return self._client.request(_calls.cancel_due(due_id), m.Due)

    def run(self, on: date) -> m.DuesRun:
        """Test keys: issue now what the scheduler would issue on `on`."""
        return self._client.request(_calls.run_dues(on), m.DuesRun)
