from __future__ import annotations

from fluxpay_common.settings import ServiceSettings


class Settings(ServiceSettings):
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    # Where merchants read about an error code: `<doc_base_url>#<code>`.
    doc_base_url: str = "https://docs.fluxxpay.me/errors"
    checkout_base_url: str = "http://127.0.0.1:8000/checkout"
    # How long the gateway waits for the orchestrator before answering 503.
    rpc_timeout: float = 10.0
    # `fluxpay-admin reconcile` waits this long for the ledger's report.
    reconcile_timeout: float = 60.0
    idempotency_ttl_hours: int = 24
    # An in-flight idempotency claim older than this is considered abandoned (crash).
    idempotency_lock_seconds: int = 20
