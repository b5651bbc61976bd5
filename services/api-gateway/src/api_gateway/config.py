from __future__ import annotations

from pydantic import model_validator

from fluxpay_common.settings import ServiceSettings


class Settings(ServiceSettings):
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    # Where merchants read about an error code: `<doc_base_url>#<code>`.
    doc_base_url: str = "https://docs.fluxxpay.me/errors"
    checkout_base_url: str = "http://127.0.0.1:8000/checkout"
    # How long the gateway waits for the orchestrator before answering 503.
    rpc_timeout: float = 10.0
    # Admission control of creates (api_gateway/admission.py): at most this many in flight
    # per gateway process, the bound shrinking towards the floor while creates are answered
    # slower than the target; beyond it a create is refused at once with 503 and Retry-After.
    create_max_in_flight: int = 64
    create_min_in_flight: int = 4
    create_target_latency_seconds: float = 0.1
    overload_retry_after_seconds: int = 1
    # `fluxpay-admin reconcile` waits this long for the ledger's report.
    reconcile_timeout: float = 60.0
    idempotency_ttl_hours: int = 24
    # An in-flight idempotency claim older than this is considered abandoned (crash).
    idempotency_lock_seconds: int = 20
    # Local development only: accept webhook URLs on loopback and private addresses (a
    # receiver on 127.0.0.1), in test and live, and http for a live loopback URL. The
    # dispatcher has the same setting. Refused outside `development`.
    webhook_allow_private_destinations: bool = False

    @model_validator(mode="after")
    def _private_destinations_only_in_development(self) -> Settings:
        if self.webhook_allow_private_destinations and self.deployment != "development":
            raise ValueError(
                "FLUXPAY_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS is only allowed in development"
            )
        return self
