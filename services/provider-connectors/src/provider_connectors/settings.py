"""Settings of a connector process (env prefix `FLUXPAY_`); one provider per process."""

from __future__ import annotations

from fluxpay_common.settings import ServiceSettings


class Settings(ServiceSettings):
    provider: str = "sandbox"
    # Embedded HTTP server for PSP callbacks; off when unset.
    connector_http_port: int | None = None
    connector_http_host: str = "127.0.0.1"
    # How often the durable poller looks for due attempts, and how long a claimed attempt
    # stays reserved to its poller (also the retry delay after a PSP outage).
    connector_poll_interval_seconds: float = 0.2
    connector_poll_lease_seconds: float = 30.0
    connector_poll_batch: int = 50
    # Seconds the simulated sandbox customer takes to answer.
    sandbox_delay_seconds: float = 1.0
