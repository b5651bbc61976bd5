"""Fee arithmetic in integer minor units (no floats anywhere near money)."""

from __future__ import annotations


def percent_fee_minor(amount_minor: int, basis_points: int) -> int:
    """`basis_points`/10 000 of an amount, rounded half up to the minor unit."""
    if amount_minor < 0 or basis_points < 0:
        raise ValueError("fees are computed on non-negative amounts and rates")
    return (amount_minor * basis_points * 2 + 10_000) // 20_000
