"""The platform's fee schedule and the fee it takes on a completed payment.

A rule is a percentage in basis points plus a fixed amount in minor units. The most specific
rule wins: the merchant's override, else the operator's rule, else the default. Fees are
booked in both environments: the sandbox is where a merchant sees its fees before going live.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

BASIS_POINTS = 10_000


@dataclass(frozen=True)
class FeeRule:
    percent_bp: int = 0
    fixed_minor: int = 0

    def __post_init__(self) -> None:
        if self.percent_bp < 0 or self.fixed_minor < 0:
            raise ValueError("fee rules are non-negative")
        if self.percent_bp > BASIS_POINTS:
            raise ValueError("a percentage fee cannot exceed 100 %")


@dataclass(frozen=True)
class FeeSchedule:
    default: FeeRule = field(default_factory=lambda: FeeRule(percent_bp=150))
    # Operator codes as in the catalogue (`mtn`, `wave`...), lower case.
    operators: dict[str, FeeRule] = field(default_factory=dict)
    merchants: dict[uuid.UUID, FeeRule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Settings are typed by people: `MTN` and `mtn` name the same operator.
        normalized = {code.lower(): rule for code, rule in self.operators.items()}
        object.__setattr__(self, "operators", normalized)

    def rule_for(self, merchant_id: uuid.UUID, operator: str | None) -> FeeRule:
        if (override := self.merchants.get(merchant_id)) is not None:
            return override
        if operator is not None and (rule := self.operators.get(operator.lower())) is not None:
            return rule
        return self.default


def round_half_up_div(numerator: int, denominator: int) -> int:
    """Integer division rounding halves up (for non-negative operands): no floats near money."""
    return (2 * numerator + denominator) // (2 * denominator)


def platform_fee(
    schedule: FeeSchedule, merchant_id: uuid.UUID, operator: str | None, amount_minor: int
) -> int:
    """The platform's fee on a payment of `amount_minor`, never more than the amount itself.

    The cap keeps the merchant's share of a tiny payment at zero rather than negative.
    """
    if amount_minor < 0:
        raise ValueError("a payment amount is never negative")
    rule = schedule.rule_for(merchant_id, operator)
    fee = round_half_up_div(amount_minor * rule.percent_bp, BASIS_POINTS) + rule.fixed_minor
    return min(fee, amount_minor)
