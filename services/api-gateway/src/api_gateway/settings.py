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
