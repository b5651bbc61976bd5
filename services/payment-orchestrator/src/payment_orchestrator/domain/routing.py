"""Which provider carries a payment: pure, from the settings' routing table."""

from __future__ import annotations

SANDBOX = "sandbox"
# Providers with an OTP confirmation flow (the merchant relays the customer's code): only the
# sandbox. Novasend's `confirmationRequired` is a payment link or a wallet approval the
# customer completes at Novasend, not a code we could submit: an OTP operator is never routed
# to a provider that would leave `awaiting_otp` unanswerable.
OTP_PROVIDERS = frozenset({SANDBOX})


def route(
    routes: dict[str, str],
    environment: str,
    country: str,
    operator: str | None,
    currency: str = "*",
    mode: str = "*",
    needs_otp: bool = False,
) -> str | None:
    """The provider for (country, operator, currency, mode), most specific rule first.

    Keys are `COUNTRY:operator[:CURRENCY[:mode]]`, `*` matching anything; None if none fits.
    An operator that confirms by OTP only goes to a provider with an OTP flow.
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
        if key in routes and (not needs_otp or routes[key] in OTP_PROVIDERS):
            return routes[key]
    return None
