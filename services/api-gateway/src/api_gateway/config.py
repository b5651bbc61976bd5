from __future__ import annotations

from pydantic import Field, model_validator

from api_gateway.input_rules import Limits
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
    # 50 ms: at 55 payments/s sustained no create was refused (p99 65 ms), and offered three
    # times that the API answered within 165 ms at p99 (README, Performance); 0.1 s let the
    # p99 reach 300 ms under overload.
    create_target_latency_seconds: float = 0.05
    overload_retry_after_seconds: int = 1
    # `fluxpay-admin reconcile` waits this long for the ledger's report.
    reconcile_timeout: float = 60.0
    idempotency_ttl_hours: int = 24
    # An in-flight idempotency claim older than this is considered abandoned (crash).
    idempotency_lock_seconds: int = 20
    # API keys: how long a rotated key's old secret keeps working unless the rotation says.
    api_key_rotation_grace_seconds: int = 86_400
    # Rate limits: requests per window, per API key and route class, and per client IP on
    # public pages; 0 turns a limit off. The window is shared by every class.
    rate_limit_window_seconds: int = 60
    rate_limit_read: int = 6000
    rate_limit_create: int = 6000
    rate_limit_refund: int = 600
    rate_limit_management: int = 600
    # Generous: a checkout page polls once a second, and mobile carriers put many payers
    # behind one address (carrier-grade NAT).
    rate_limit_public_per_ip: int = 1200
    # A limiter slower than this counts as down (what moves money gets 503; the rest passes).
    rate_limit_timeout_seconds: float = 1.0
    # Dues (payment types): how often the scheduler issues what is due today (0: never;
    # tests run it on demand with `POST /api/v1/dues/run`), and how long a due's hosted
    # payment stays payable.
    dues_scheduler_seconds: float = Field(default=300.0, ge=0)
    dues_payment_window_seconds: int = Field(default=7 * 86_400, ge=300)
    # Local development only: accept webhook URLs on loopback and private addresses (a
    # receiver on 127.0.0.1), in test and live, and http for a live loopback URL. The
    # dispatcher has the same setting. Refused outside `development`.
    webhook_allow_private_destinations: bool = False
    # Input limits at the edge (README, Security): a create is about 1 KiB; Stripe's
    # metadata bounds (50 keys, keys of 40 characters, values of 500).
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_json_depth: int = Field(default=20, ge=4, le=100)
    metadata_max_keys: int = Field(default=50, ge=1)
    metadata_key_length: int = Field(default=40, ge=1)
    metadata_value_length: int = Field(default=500, ge=1)

    def limits(self) -> Limits:
        return Limits(
            max_body_bytes=self.max_body_bytes,
            max_depth=self.max_json_depth,
            metadata_max_keys=self.metadata_max_keys,
            metadata_key_length=self.metadata_key_length,
            metadata_value_length=self.metadata_value_length,
        )

    @model_validator(mode="after")
    def _private_destinations_only_in_development(self) -> Settings:
        if self.webhook_allow_private_destinations and self.deployment != "development":
            raise ValueError(
                "FLUXPAY_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS is only allowed in development"
            )
        return self
