"""IremboPay (seed 001; irembopay.gitbook.io, API v2): invoice, then push or link.

- headers `irembopay-secretKey` and `X-API-Version: 2` on every call;
- `POST /payments/invoices` with our payment id as `transactionId` (unique at IremboPay,
  so a retried creation never makes a second invoice: a duplicate is looked up instead);
- MTN/Airtel: `POST /payments/transactions/initiate` pushes to the customer's phone (an
  invoice can be paid once, so a repeated push never charges twice); other methods
  (banks, cards): the invoice's `paymentLinkUrl`;
- `GET /payments/invoices/{invoiceNumber}` is the status (`NEW`, `PAID`): IremboPay looks
  invoices up by their number only (its Node SDK: `getInvoice(880530633460)`), so the number
  is stored as soon as the invoice exists, before the push;
- no refund API: refunds answer `FlowNotSupported` (made out of band).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx

from fluxpay_common.ids import utcnow
from provider_connectors.config import Settings
from provider_connectors.connectors.base import (
    AttemptNotFound,
    Clock,
    FlowNotSupported,
    ProviderUnavailable,
)
from provider_connectors.connectors.http import PspHttp, RetryPolicy, json_body
from provider_connectors.connectors.irembopay import transformers, webhooks
from provider_connectors.connectors.polling import DEFAULT_EXPIRY, next_poll_at
from provider_connectors.domain.model import (
    Attempt,
    CallbackEvent,
    ProviderResult,
    RefundAttempt,
    RefundResult,
)

API_VERSION = "2"


class IremboPayConnector:
    name = "irembopay"

    def __init__(self, settings: Settings, clock: Clock = utcnow, transport: Any = None) -> None:
        secret = settings.irembopay_secret_key.get_secret_value()
        self._http = PspHttp(
            settings.irembopay_base_url,
            psp=self.name,
            timeout_seconds=settings.psp_timeout_seconds,
            retry=RetryPolicy(settings.psp_retry_attempts, settings.psp_retry_backoff_seconds),
            headers={"irembopay-secretKey": secret, "X-API-Version": API_VERSION},
            transport=transport,
        )
        webhook_secret = settings.irembopay_webhook_secret
        self._webhook_secret = webhook_secret.get_secret_value() if webhook_secret else secret
        self._account = settings.irembopay_payment_account_identifier
        self._product_code = settings.irembopay_product_code
        self._language = settings.irembopay_language
        self._poll_every = timedelta(seconds=settings.irembopay_poll_seconds)
        self._clock = clock

    def prepare(self, attempt: Attempt) -> dict[str, Any]:
        return {"transaction_id": str(attempt.payment_id)}

    @staticmethod
    def invoice_number(attempt: Attempt) -> str | None:
        return attempt.data.get(transformers.INVOICE_NUMBER) or attempt.psp_reference

    async def initiate(self, attempt: Attempt) -> ProviderResult:
        invoice = await self._invoice(attempt)
        if isinstance(invoice, ProviderResult):
            return invoice
        return await self._start_payment(attempt, invoice)

    async def fetch_status(self, attempt: Attempt) -> ProviderResult:
        number = self.invoice_number(attempt)
        invoice = await self._get_invoice(number) if number else None
        if invoice is None:
            raise AttemptNotFound(str(attempt.payment_id))
        result = transformers.invoice_result(invoice, self._clock())
        if attempt.status == "pending" and result.status is None:
            # The invoice exists but the push may never have gone out: push (again).
            return await self._start_payment(attempt, invoice)
        return self._scheduled(attempt, result)

    async def submit_otp(self, attempt: Attempt, otp: str) -> ProviderResult:
        raise FlowNotSupported("IremboPay customers approve on their phone or by link")

    async def cancel(self, attempt: Attempt) -> ProviderResult:
        raise FlowNotSupported("IremboPay has no invoice cancellation")

    async def refund(self, attempt: Attempt, refund: RefundAttempt) -> RefundResult:
        raise FlowNotSupported("IremboPay offers no refund API: refund the customer out of band")

    async def fetch_refund_status(self, attempt: Attempt, refund: RefundAttempt) -> RefundResult:
        raise FlowNotSupported("IremboPay offers no refund API")

    def parse_callback(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> CallbackEvent:
        webhooks.verify_signature(self._webhook_secret, headers, body)
        return webhooks.parse_event(body)

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------ flows

    async def _invoice(self, attempt: Attempt) -> Mapping[str, Any] | ProviderResult:
        """The attempt's invoice: created now, or the one an earlier try created."""
        expiry = attempt.expires_at or attempt.created_at + DEFAULT_EXPIRY
        body = transformers.invoice_request(
            attempt, self._account, self._product_code, self._language, expiry
        )
        response = await self._http.request("POST", "/payments/invoices", json=body)
        if response.is_success:
            return transformers.data_of(json_body(response))
        if response.status_code == 409:
            return await self._existing_invoice(attempt, json_body(response))
        return transformers.rejection(response.status_code, json_body(response))

    async def _existing_invoice(
        self, attempt: Attempt, answer: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """An earlier try made the invoice: found by the number we stored, or the one the
        duplicate answer names. Otherwise unknown (IremboPay has no lookup by our id)."""
        number = self.invoice_number(attempt) or transformers.data_of(answer).get("invoiceNumber")
        # Last resort: IremboPay's Get Invoice page also names the transactionId as a key.
        for key in (str(number) if number else None, str(attempt.payment_id)):
            existing = await self._get_invoice(key) if key else None
            if existing:
                return existing
        raise ProviderUnavailable("IremboPay holds an invoice for this payment; number unknown")

    async def _start_payment(self, attempt: Attempt, invoice: Mapping[str, Any]) -> ProviderResult:
        number = str(invoice.get("invoiceNumber"))
        invoiced = replace(transformers.invoice_result(invoice, self._clock()), status="processing")
        push = transformers.push_request(attempt, number)
        if push is None:
            return self._scheduled(attempt, replace(invoiced, status="awaiting_payment"))
        try:
            response = await self._http.request(
                "POST", "/payments/transactions/initiate", json=push
            )
        except ProviderUnavailable:
            # Keep the invoice number (status unchanged): the poller asks IremboPay with it.
            return self._scheduled(attempt, replace(invoiced, status=None))
        if response.is_success:
            reference = transformers.data_of(json_body(response)).get("referenceId")
            data = {**invoiced.data, "irembopay_push_reference": reference}
            return self._scheduled(attempt, replace(invoiced, data=data))
        return await self._push_refused(attempt, number, response)

    async def _push_refused(
        self, attempt: Attempt, number: str, response: httpx.Response
    ) -> ProviderResult:
        body = json_body(response)
        if transformers.error_code(body) == "INVOICE_ALREADY_PAID":
            invoice = await self._get_invoice(number) or {}
            return self._scheduled(attempt, transformers.invoice_result(invoice, self._clock()))
        return transformers.rejection(response.status_code, body)

    async def _get_invoice(self, number: str) -> Mapping[str, Any] | None:
        response = await self._http.request("GET", f"/payments/invoices/{number}")
        if response.status_code == 404:
            return None
        if not response.is_success:
            return {}
        return transformers.data_of(json_body(response))

    def _scheduled(self, attempt: Attempt, result: ProviderResult) -> ProviderResult:
        return replace(result, next_poll_at=next_poll_at(attempt, self._clock(), self._poll_every))
