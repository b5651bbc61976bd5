"""Request bodies exactly as the seed defines them, validated strictly (no "3000" for 3000).

Optional fields are omittable but not nullable, as in the seed: an explicit null is a 400.
(Defaults are not validated, so an omitted field reads as None: hence the type ignores.)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

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
Metadata = dict[str, Any]


def absolute_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
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


class CollectPaymentConfirm(Strict):
    otp: Annotated[str, StringConstraints(min_length=4, max_length=8)]


class CollectPaymentCancel(Strict):
    reason: Annotated[str, StringConstraints(max_length=64)] = None  # type: ignore[assignment]


class CollectRefundCreate(Strict):
    amount: Annotated[int, Field(ge=1, le=MAX_AMOUNT)] = None  # type: ignore[assignment]
    reason: Description = "customer_dispute"
    metadata: Metadata = None  # type: ignore[assignment]
