"""The platform fee schedule lives in `fluxpay_common.fees`: the ledger books the fee and the
orchestrator shows it on the payment, from the one schedule (`FLUXPAY_LEDGER_FEES`)."""

from fluxpay_common.fees import (
    BASIS_POINTS,
    FeeRule,
    FeeSchedule,
    platform_fee,
    round_half_up_div,
)

__all__ = ["BASIS_POINTS", "FeeRule", "FeeSchedule", "platform_fee", "round_half_up_div"]
