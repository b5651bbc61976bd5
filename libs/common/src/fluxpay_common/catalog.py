"""Operator catalogue: countries, currencies, operators and their phone numbering.

Benin moved to 10-digit numbers (`01` + the former 8 digits) in November 2024; both forms
are accepted and the operator is read from the 8-digit part. Côte d'Ivoire numbers have
10 digits since 2021, the first two naming the network. Wave and Coris Money are wallets
open to any mobile number of their country.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    dialing_code: str
    currency: str


@dataclass(frozen=True)
class Operator:
    code: str
    name: str
    country: str
    currency: str
    otp_required: bool
    # Prefixes of the national significant number; empty = any mobile number of the country.
    prefixes: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "name": self.name,
            "country": self.country,
            "currency": self.currency,
            "otp_required": self.otp_required,
            "phone_prefixes": list(self.prefixes),
        }


COUNTRIES: dict[str, Country] = {
    "BJ": Country("BJ", "Bénin", "229", "XOF"),
    "TG": Country("TG", "Togo", "228", "XOF"),
    "CI": Country("CI", "Côte d'Ivoire", "225", "XOF"),
    # Beyond the seed's enums (IremboPay): Rwanda, in Rwandan francs.
    "RW": Country("RW", "Rwanda", "250", "RWF"),
}
# Cards are a payment method of every country (Stripe Checkout), not a mobile operator.
CARD = "card"

_BJ_MTN = (
    "42",
    "46",
    "50",
    "51",
    "52",
    "53",
    "54",
    "56",
    "57",
    "59",
    "61",
    "62",
    "66",
    "67",
    "69",
    "90",
    "91",
    "96",
    "97",
)
_BJ_MOOV = ("55", "58", "60", "63", "64", "65", "68", "94", "95", "98", "99")
_BJ_CELTIIS = ("40", "41", "43", "44", "45", "47", "48", "49")

OPERATORS: tuple[Operator, ...] = (
    Operator("mtn", "MTN Mobile Money", "BJ", "XOF", False, _BJ_MTN),
    Operator("moov", "Moov Money", "BJ", "XOF", False, _BJ_MOOV),
    Operator("celtiis", "Celtiis Cash", "BJ", "XOF", False, _BJ_CELTIIS),
    Operator("coris", "Coris Money", "BJ", "XOF", True, ()),
    Operator(
        "togocom",
        "T-Money (Togocom)",
        "TG",
        "XOF",
        False,
        ("70", "71", "72", "73", "90", "91", "92", "93"),
    ),
    Operator(
        "moov", "Flooz (Moov Africa Togo)", "TG", "XOF", False, ("78", "79", "96", "97", "98", "99")
    ),
    Operator("orange", "Orange Money", "CI", "XOF", False, ("07",)),
    Operator("mtn", "MTN MoMo", "CI", "XOF", False, ("05",)),
    Operator("moov", "Moov Money", "CI", "XOF", False, ("01",)),
    Operator("wave", "Wave", "CI", "XOF", False, ()),
    Operator("mtn", "MTN MoMo", "RW", "RWF", False, ("78", "79")),
    Operator("airtel", "Airtel Money", "RW", "RWF", False, ("72", "73")),
    *(
        Operator(CARD, "Carte bancaire (Visa, Mastercard)", c.code, c.currency, False, ())
        for c in COUNTRIES.values()
    ),
)

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def operators_of(country: str | None = None) -> list[Operator]:
    return [op for op in OPERATORS if country is None or op.country == country]


def find_operator(country: str, code: str) -> Operator | None:
    return next((op for op in OPERATORS if op.country == country and op.code == code), None)


def national_number(country: str, phone: str) -> str | None:
    """The number after the dialing code when `phone` is a valid mobile number of `country`."""
    info = COUNTRIES.get(country)
    compact = re.sub(r"[\s.-]", "", phone)
    if info is None or not _E164.match(compact) or not compact.startswith("+" + info.dialing_code):
        return None
    national = compact[1 + len(info.dialing_code) :]
    if country == "BJ" and (len(national) == 8 or (len(national) == 10 and national[:2] == "01")):
        return national
    if country == "TG" and len(national) == 8:
        return national
    if country == "CI" and len(national) == 10:
        return national
    if country == "RW" and len(national) == 9:
        return national
    return None


def phone_fits_operator(operator: Operator, phone: str) -> bool:
    national = national_number(operator.country, phone)
    if national is None:
        return False
    if not operator.prefixes:
        return True
    if operator.country == "BJ" and len(national) == 10:
        national = national[2:]
    return national.startswith(operator.prefixes)


def normalize_phone(phone: str) -> str:
    return re.sub(r"[\s.-]", "", phone)
