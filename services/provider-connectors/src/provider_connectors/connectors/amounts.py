"""PSP amounts (numbers or decimal strings in major units) to our integer minor units."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from fluxpay_common.money import MINOR_PER_MAJOR


def minor_of(value: object) -> int | None:
    """`153`, `"153.00"` or `6.5` major units as minor units; None when absent or garbled."""
    if value is None or isinstance(value, bool):
        return None
    try:
        major = Decimal(str(value))
    except InvalidOperation:
        return None
    if not major.is_finite():
        return None
    return int((major * MINOR_PER_MAJOR).quantize(Decimal(1), rounding=ROUND_HALF_UP))
