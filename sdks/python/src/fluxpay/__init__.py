"""FluxPay Collect API for Python: `FluxPay` (sync) and `AsyncFluxPay` clients, typed
models and errors, and `fluxpay.webhooks.construct_event` for signed webhooks.

    import fluxpay
    client = fluxpay.FluxPay(api_key="...")
    payment = client.payments.create(reference="order-1", amount=3000, currency="XOF",
                                     country="BJ", operator="mtn", phone="+22997000001")
"""

from fluxpay import errors, models, webhooks
from fluxpay._async_client import AsyncFluxPay
from fluxpay._base import RetryPolicy
from fluxpay._client import FluxPay
from fluxpay._pagination import AsyncPager, Pager
from fluxpay._version import __version__
from fluxpay.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    FluxPayError,
    IdempotencyError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    SignatureVerificationError,
    UnprocessableError,
)
from fluxpay.models import Event, Payment, Refund
from fluxpay.webhooks import construct_event

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncFluxPay",
    "AsyncPager",
    "AuthenticationError",
    "ConflictError",
    "Event",
    "FluxPay",
    "FluxPayError",
    "IdempotencyError",
    "InvalidRequestError",
    "NotFoundError",
    "Pager",
    "Payment",
    "PermissionDeniedError",
    "RateLimitError",
    "Refund",
    "RetryPolicy",
    "SignatureVerificationError",
    "UnprocessableError",
    "__version__",
    "construct_event",
    "errors",
    "models",
    "webhooks",
]
