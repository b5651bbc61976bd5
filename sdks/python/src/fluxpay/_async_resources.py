"""The async client's resources: the same methods as the sync client's, awaited.

Generated from `_resources.py` by `scripts/gen_async.py`; edit that file, not this one."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fluxpay import _calls
from fluxpay import models as m
from fluxpay._pagination import AsyncPager

if TYPE_CHECKING:
    from fluxpay._async_client import AsyncFluxPay


class _Resource:
    def __init__(self, client: AsyncFluxPay) -> None:
        self._client = client

    def _pager(self, call: _calls.Call, item: type[Any]) -> AsyncPager[Any]:
        return AsyncPager(lambda c: self._client.request(c, m.ListObject[item]), call)  # type: ignore[valid-type]


class Payments(_Resource):
    async def create(
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
        return await self._client.request(_calls.create_payment(body, idempotency_key), m.Payment)

    async def retrieve(self, reference_or_id: str, *, sync: bool = False) -> m.Payment:
        """A payment by its id or your reference; `sync=True` asks the provider first."""
        return await self._client.request(_calls.retrieve_payment(reference_or_id, sync), m.Payment)

    def list(
        self,
        *,
        status: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
    ) -> AsyncPager[m.Payment]:
        """Payments newest first (`GET /collect/payments`); iterating walks every page."""
        call = _calls.list_payments(status=status, limit=limit, starting_after=starting_after)
        return self._pager(call, m.Payment)

    async def confirm(self, reference_or_id: str, *, otp: str) -> m.Payment:
        """Submit the customer's OTP for a payment `awaiting_otp` (not retried once sent)."""
        return await self._client.request(_calls.confirm_payment(reference_or_id, otp), m.Payment)

    async def cancel(self, reference_or_id: str, *, reason: str | None = None) -> m.Payment:
        """Cancel an open payment."""
        return await self._client.request(_calls.cancel_payment(reference_or_id, reason), m.Payment)


class Refunds(_Resource):
    async def create(
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
        return await self._client.request(call, m.Refund)

    def list(
        self, payment: str, *, limit: int | None = None, starting_after: str | None = None
    ) -> AsyncPager[m.Refund]:
        """A payment's refunds (`GET /collect/payments/{id}/refunds`)."""
        call = _calls.list_refunds(payment, limit=limit, starting_after=starting_after)
        return self._pager(call, m.Refund)


class Operators(_Resource):
    async def list(self, *, country: str | None = None) -> list[m.CountryOperators]:
        """The operator catalogue, per country: phone prefixes, whether an OTP is needed."""
        page = await self._client.request(
            _calls.list_operators(country), m.ListObject[m.CountryOperators]
        )
        return page.data


class Balance(_Resource):
    async def retrieve(self) -> m.Balance:
        """Available balance per currency, in the key's environment."""
        return await self._client.request(_calls.retrieve_balance(), m.Balance)

    def list_transactions(
        self, *, limit: int | None = None, starting_after: str | None = None
    ) -> AsyncPager[m.BalanceTransaction]:
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
    ) -> AsyncPager[m.EventSummary]:
        """Webhook events newest first, each with its latest delivery's status."""
        call = _calls.list_events(type=type, limit=limit, starting_after=starting_after)
        return self._pager(call, m.EventSummary)

    async def retrieve(self, event_id: str) -> m.Event:
        """One event exactly as sent, with its deliveries and their attempts."""
        return await self._client.request(_calls.retrieve_event(event_id), m.Event)

    async def replay(self, event_id: str) -> m.EventReplay:
        """Deliver one event again (same id, fresh signature)."""
        return await self._client.request(_calls.replay_event(event_id), m.EventReplay)

    async def replay_failed(self, *, since: datetime) -> m.EventReplay:
        """Deliver again every event since `since` whose delivery failed."""
        return await self._client.request(_calls.replay_failed_events(since), m.EventReplay)


class WebhookEndpoint(_Resource):
    async def retrieve(self) -> m.WebhookEndpoint:
        """Your webhook URL and its health."""
        return await self._client.request(_calls.retrieve_webhook_endpoint(), m.WebhookEndpoint)

    async def update(self, *, url: str) -> m.WebhookEndpoint:
        """Set the webhook URL (re-enables a disabled endpoint)."""
        return await self._client.request(_calls.update_webhook_endpoint(url), m.WebhookEndpoint)

    async def rotate_secret(self) -> m.WebhookSecret:
        """A new signing secret, shown once; the old one signs too for 24 hours."""
        return await self._client.request(_calls.rotate_webhook_secret(), m.WebhookSecret)


class Webhooks(_Resource):
    async def send_test_event(self) -> m.EventSummary:
        """A signed sample `collect.payment.completed` (`"test": true`) to your endpoint."""
        return await self._client.request(_calls.send_test_event(), m.EventSummary)
