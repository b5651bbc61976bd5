"""Which provider carries a payment: pure, from the settings' routing table."""

from __future__ import annotations

SANDBOX = "sandbox"


def route(
    routes: dict[str, str], environment: str, country: str, operator: str | None
) -> str | None:
    """The provider for (country, operator), most specific rule first; None if none fits."""
    if environment == "test":
        return SANDBOX
    op = operator or "*"
    for key in (f"{country}:{op}", f"*:{op}", f"{country}:*", "*:*"):
        if key in routes:
            return routes[key]
    return None
