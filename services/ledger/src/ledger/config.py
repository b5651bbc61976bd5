from __future__ import annotations

from pydantic import Field

from fluxpay_common.settings import ServiceSettings
from ledger.domain.fees import FeeSchedule


class Settings(ServiceSettings):
    # FLUXPAY_LEDGER_FEES, JSON: {"default": {"percent_bp": 150, "fixed_minor": 0},
    #   "operators": {"wave": {"percent_bp": 100}}, "merchants": {"<uuid>": {"percent_bp": 90}}}
    ledger_fees: FeeSchedule = Field(default_factory=FeeSchedule)
    # How long reconciliation waits for the orchestrator's answer (a day can be large).
    reconcile_rpc_timeout: float = 30.0
    # Events taken from `ledger.events` per transaction (fluxpay_common.batch_consumer): one
    # statement, one commit and one ack for as many as are already delivered.
    ledger_event_batch_size: int = Field(default=50, ge=1)
