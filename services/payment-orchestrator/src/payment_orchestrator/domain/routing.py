"""Which provider carries a payment: pure, from the settings' routing table."""

from __future__ import annotations

SANDBOX = "sandbox"


def route(
    routes: dict[str, str],
    environment: str,
    country: str,
    operator: str | None,
    currency: str = "*",
    mode: str = "*",
) -> str | None:
    """The provider for (country, operator, currency, mode), most specific rule first.

    Keys are `COUNTRY:operator[:CURRENCY[:mode]]`, `*` matching anything; None if none fits.
    """
    if environment == "test":
        return SANDBOX
    op = operator or "*"
    keys = (
        f"{country}:{op}:{currency}:{mode}",
        f"{country}:{op}:{currency}",
        f"{country}:{op}",
        f"*:{op}:{currency}",
        f"*:{op}",
        f"{country}:*",
        "*:*",
    )
    for key in keys:
        if key in routes:
            return routes[key]
    return None
