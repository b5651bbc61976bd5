"""What the SDK's end-to-end tests share: an SDK client per merchant, waits on payments."""

from __future__ import annotations

from typing import Any

from fluxpay_testing.infra import wait_for

from fluxpay import AsyncFluxPay, FluxPay
from fluxpay.models import Payment
from tests.support.stack import Stack

# The tests never wait on a retry delay they did not ask for.
NO_SLEEP_SYNC: Any = lambda _: None  # noqa: E731


async def _no_sleep(_: float) -> None:
    return None


def sync_client(stack: Stack | str, key: str, **options: Any) -> FluxPay:
    base = stack if isinstance(stack, str) else stack.base_url
    options.setdefault("sleep", NO_SLEEP_SYNC)
    return FluxPay(api_key=key, base_url=f"{base}/api/v1", timeout=15, **options)


def async_client(stack: Stack | str, key: str, **options: Any) -> AsyncFluxPay:
    base = stack if isinstance(stack, str) else stack.base_url
    options.setdefault("sleep", _no_sleep)
    return AsyncFluxPay(api_key=key, base_url=f"{base}/api/v1", timeout=15, **options)


async def reach(client: AsyncFluxPay, payment_id: str, status: str) -> Payment:
    async def probe() -> Payment | None:
        payment = await client.payments.retrieve(payment_id)
        return payment if payment.status == status else None

    return await wait_for(probe, timeout=30, what=f"payment {payment_id} {status}")


def bj(phone_suffix: str) -> dict[str, Any]:
    import uuid

    return {
        "reference": f"sdk-{uuid.uuid4()}",
        "amount": 3000,
        "currency": "XOF",
        "country": "BJ",
        "operator": "mtn",
        "phone": f"+22997{phone_suffix}",
    }
