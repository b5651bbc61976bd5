"""Business rules on a well-formed create request, beyond what the schema can say. Pure."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from api_gateway.errors import ApiError
from api_gateway.schemas import CollectPaymentCreate
from fluxpay_common import catalog

# What people put between digits when they write a phone number by hand.
_PHONE_SEPARATORS = re.compile(r"[\s.()\-]")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def e164(phone: str) -> str | None:
    """`phone` in E.164 (`"+229 95-00.00 01"` -> `"+22995000001"`), or None when what is
    left after removing spaces, dots, dashes and parentheses is not a phone number."""
    compact = _PHONE_SEPARATORS.sub("", phone)
    return compact if _E164.fullmatch(compact) else None


def normalized_phone(phone: str) -> str:
    """The E.164 form sent on to the orchestrator and the PSP, or `phone_invalid`."""
    if (normalized := e164(phone)) is None:
        raise ApiError(
            400,
            "phone_invalid",
            f"'{phone}' is not a phone number in E.164 form (+ country code, then digits).",
            "customer.phone",
        )
    return normalized


def check_operator_and_phone(country: str, operator: str | None, phone: str | None) -> None:
    """A direct payment names an operator of the country and a phone number it serves."""
    if not operator:
        raise ApiError(
            400, "parameter_missing", "'operator' is required in direct mode.", "operator"
        )
    found = catalog.find_operator(country, operator)
    if found is None:
        codes = ", ".join(op.code for op in catalog.operators_of(country))
        raise ApiError(
            400,
            "operator_not_supported",
            f"'{operator}' is not an operator of {country}; use one of: {codes}.",
            "operator",
        )
    if found.code == catalog.CARD and not phone:
        return  # the card holder types the card on Stripe's page; no phone needed
    if not phone:
        raise ApiError(
            400,
            "parameter_missing",
            "'customer.phone' is required in direct mode.",
            "customer.phone",
        )
    if catalog.national_number(country, phone) is None:
        dialing = catalog.COUNTRIES[country].dialing_code
        raise ApiError(
            400,
            "phone_invalid",
            f"'{phone}' is not a mobile number of {country} in E.164 form (+{dialing}…).",
            "customer.phone",
        )
    if not catalog.phone_fits_operator(found, phone):
        raise ApiError(
            400,
            "phone_operator_mismatch",
            f"'{phone}' is not a {found.name} number.",
            "customer.phone",
        )


def checked_create(body: CollectPaymentCreate, environment: str) -> CollectPaymentCreate:
    """The request as it goes on (customer phone in E.164), or the ApiError refusing it."""
    if body.customer is not None and body.customer.phone is not None:
        phone = normalized_phone(body.customer.phone)
        body = body.model_copy(
            update={"customer": body.customer.model_copy(update={"phone": phone})}
        )
    _check_rules(body, environment)
    return body


def _check_rules(body: CollectPaymentCreate, environment: str) -> None:
    country = catalog.COUNTRIES[body.country]
    if body.currency != country.currency:
        raise ApiError(
            400,
            "currency_not_supported",
            f"Payments in {body.country} are in {country.currency}, not {body.currency}.",
            "currency",
        )
    live_http = environment == "live" and urlsplit(body.callback_url or "").scheme != "https"
    if body.callback_url and live_http:
        raise ApiError(
            400,
            "callback_url_invalid",
            "In live, 'callback_url' must be an https URL.",
            "callback_url",
        )
    if body.mode == "direct":
        phone = body.customer.phone if body.customer else None
        check_operator_and_phone(body.country, body.operator, phone)
    elif body.operator and catalog.find_operator(body.country, body.operator) is None:
        raise ApiError(
            400,
            "operator_not_supported",
            f"'{body.operator}' is not an operator of {body.country}.",
            "operator",
        )
