"""A merchant's create, as these tests send it: a direct MTN push in Benin."""

from __future__ import annotations

import uuid
from typing import Any

from fluxpay_common.messages import CreatePayment, ProviderPaymentUpdate, provider_update_id
from payment_orchestrator.service_layer import handlers
from payment_orchestrator.service_layer.handlers import Dependencies


def create_command(merchant: uuid.UUID, **fields: Any) -> CreatePayment:
    """A live 3 000 XOF create with its own key and reference; `fields` override."""
    defaults: dict[str, Any] = {
        "merchant_id": merchant,
        "environment": "live",
        "idempotency_key": str(uuid.uuid4()),
        "reference": f"order-{uuid.uuid4().hex[:8]}",
        "amount": 3000,
        "currency": "XOF",
        "country": "BJ",
        "operator": "mtn",
        "customer": {"phone": "+22997000001"},
    }
    return CreatePayment(**(defaults | fields))


async def create_payment(deps: Dependencies, merchant: uuid.UUID, **fields: Any) -> uuid.UUID:
    """The payment's id once the handlers created it."""
    reply = await handlers.handle_command(create_command(merchant, **fields), deps)
    assert reply.payment is not None, reply.error
    return reply.payment.id


def provider_update(payment_id: uuid.UUID, status: str, sequence: int) -> ProviderPaymentUpdate:
    """A connector's numbered report of `status` for the payment."""
    return ProviderPaymentUpdate(
        payment_id=payment_id,
        provider="mtn_momo",
        status=status,  # type: ignore[arg-type]
        sequence=sequence,
        message_id=provider_update_id(payment_id, sequence),
        psp_reference="psp-1",
    )
