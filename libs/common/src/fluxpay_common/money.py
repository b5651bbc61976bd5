"""Money is integers: `amount` in major units (3000 = 3 000 XOF), `amount_minor` in hundredths."""

from __future__ import annotations

MINOR_PER_MAJOR = 100


def to_minor(amount: int) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("amounts are integers in major units")
    return amount * MINOR_PER_MAJOR


def to_major(amount_minor: int) -> int:
    """Major units of an amount kept in hundredths; refuses a fractional amount."""
    major, rest = divmod(amount_minor, MINOR_PER_MAJOR)
    if rest:
        raise ValueError(f"{amount_minor} minor units is not a whole major amount")
    return major
