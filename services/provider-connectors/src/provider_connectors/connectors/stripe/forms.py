"""Stripe's wire conventions: bracketed form encoding and currency exponents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fluxpay_common.money import MINOR_PER_MAJOR

# Currencies Stripe counts in whole units (no cents), from Stripe's currency list.
ZERO_DECIMAL = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)


def to_stripe_amount(amount: int, currency: str) -> int:
    """Our major-unit amount in Stripe's smallest unit of `currency`."""
    return amount if currency.upper() in ZERO_DECIMAL else amount * MINOR_PER_MAJOR


def to_our_minor(stripe_amount: int, currency: str) -> int:
    """A Stripe amount in our hundredths (`amount_minor`)."""
    return stripe_amount * MINOR_PER_MAJOR if currency.upper() in ZERO_DECIMAL else stripe_amount


def form_encode(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """`{"a": {"b": [1]}}` -> `[("a[b][0]", "1")]`, as Stripe's API expects."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        pairs.extend(_encode_value(name, value))
    return pairs


def _encode_value(name: str, value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return form_encode(value, name)
    if isinstance(value, list | tuple):
        return [
            pair for i, item in enumerate(value) for pair in _encode_value(f"{name}[{i}]", item)
        ]
    if isinstance(value, bool):
        return [(name, "true" if value else "false")]
    return [(name, str(value))]
