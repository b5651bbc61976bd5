from __future__ import annotations

from pydantic import Field

from fluxpay_common.fees import FeeSchedule
from fluxpay_common.settings import ServiceSettings


class Settings(ServiceSettings):
    # Where the hosted checkout page lives; a payment's checkout_url is `<base>/<id>`.
    checkout_base_url: str = "http://127.0.0.1:8000/checkout"
    # Live routing: "<COUNTRY>:<operator>" (or "*:<operator>", "<COUNTRY>:*") -> provider.
    # The test environment always routes to the sandbox.
    routes: dict[str, str] = Field(
        default_factory=lambda: {
            "BJ:mtn": "mtn_momo",
            "CI:mtn": "mtn_momo",
            "*:card": "stripe",
            "RW:*": "irembopay",
            "BJ:*": "novasend",
            "TG:*": "novasend",
            "CI:*": "novasend",
        }
    )
    # The platform fee schedule, shared with the ledger (FLUXPAY_LEDGER_FEES): shown on
    # each payment, booked by the ledger.
    ledger_fees: FeeSchedule = Field(default_factory=FeeSchedule)
    # Tests compress time: expires_in_seconds * scale is the real delay.
    expiry_time_scale: float = 1.0
    expiry_sweep_seconds: float = 0.5
    # How long a synchronous call to a connector (OTP, status sync) may take: shorter than the
    # gateway's wait for us (its FLUXPAY_RPC_TIMEOUT, 10 s), so the merchant hears our answer
    # (`provider_unavailable`, or the stored payment on a sync), not the gateway's 503.
    connector_rpc_timeout: float = 8.0
    # Provider updates taken from their queue per transaction (fluxpay_common.batch_consumer):
    # one commit and one ack for all the updates already delivered, up to this many.
    provider_update_batch_size: int = Field(default=50, ge=1)
