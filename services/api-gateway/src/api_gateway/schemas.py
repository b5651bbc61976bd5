"""Request bodies exactly as the seed defines them, validated strictly (no "3000" for 3000).

Optional fields are omittable but not nullable, as in the seed: an explicit null is a 400.
(Defaults are not validated, so an omitted field reads as None: hence the type ignores.)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

# Bounds beyond the seed that keep every amount far inside a bigint of minor units.
MAX_AMOUNT = 1_000_000_000


def _text(max_length: int, min_length: int = 0) -> Any:
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length)]


Phone = _text(32)
Name = _text(100)
Code = _text(32)
Description = _text(255)
Url = _text(2048)
Reference = _text(100, min_length=1)
INT64 = 2**63


def _fits_json(value: Any) -> Any:
    """Metadata travels as JSON between services, where an integer is at most 64 bits."""
    if isinstance(value, dict):
        for item in value.values():
            _fits_json(item)
    elif isinstance(value, list):
        for item in value:
            _fits_json(item)
    elif isinstance(value, int) and not -INT64 <= value < INT64:
        raise ValueError("integers must fit in 64 bits")
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(_fits_json)]


def absolute_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    return value


# Characters that change what a URL path means when a merchant puts the reference in
# `GET /collect/payments/{reference}`: a reference holding one could not be read back.
_UNREADABLE_IN_A_PATH = frozenset("/\\?#%")


# Paths of their own under /collect/payments/: a payment with this reference could not be read.
_RESERVED_REFERENCES = frozenset({".", "..", "export.csv"})


def readable_reference(value: str) -> str:
    if value in _RESERVED_REFERENCES or _UNREADABLE_IN_A_PATH.intersection(value):
        raise ValueError(
            "a reference cannot hold '/', '\\', '?', '#' or '%', nor be '.', '..' or"
            " 'export.csv':"
            " it must be readable back at GET /collect/payments/{reference}"
        )
    return value


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


Email = Annotated[
    str, StringConstraints(max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$")
]


class Customer(Strict):
    phone: Phone = None  # type: ignore[assignment]
    first_name: Name = None  # type: ignore[assignment]
    last_name: Name = None  # type: ignore[assignment]
    # Beyond the seed (additive): PSPs that take it (Stripe Checkout, IremboPay) receive it.
    email: Email = None  # type: ignore[assignment]


class CollectPaymentCreate(Strict):
    reference: Reference
    amount: Annotated[int, Field(ge=100, le=MAX_AMOUNT)]
    # The seed's enums, plus Rwanda in RWF (IremboPay), an extension that breaks nothing.
    currency: Literal["XOF", "XAF", "RWF"]
    country: Literal["BJ", "TG", "CI", "RW"]
    mode: Literal["direct", "hosted"] = "direct"
    customer: Customer = None  # type: ignore[assignment]
    operator: Code = None  # type: ignore[assignment]
    description: Description = None  # type: ignore[assignment]
    callback_url: Url = None  # type: ignore[assignment]
    expires_in_seconds: Annotated[int, Field(ge=300, le=3600)] = 900
    external_merchant_id: Name = None  # type: ignore[assignment]
    metadata: Metadata = None  # type: ignore[assignment]

    _callback_url = field_validator("callback_url")(lambda v: absolute_http_url(v))
    _reference = field_validator("reference")(lambda v: readable_reference(v))


class CollectPaymentConfirm(Strict):
    otp: Annotated[str, StringConstraints(min_length=4, max_length=8)]


class CollectPaymentCancel(Strict):
    reason: Annotated[str, StringConstraints(max_length=64)] = None  # type: ignore[assignment]


class CollectRefundCreate(Strict):
    amount: Annotated[int, Field(ge=1, le=MAX_AMOUNT)] = None  # type: ignore[assignment]
    reason: Description = "customer_dispute"
    metadata: Metadata = None  # type: ignore[assignment]
