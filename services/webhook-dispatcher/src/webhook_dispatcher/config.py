"""Settings of the webhook dispatcher (env prefix FLUXPAY_)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator, model_validator

from fluxpay_common.settings import ServiceSettings
from webhook_dispatcher.domain.schedule import DEFAULT_SCHEDULE, Schedule, parse_schedule

FIVE_DAYS = 5 * 86400


class Settings(ServiceSettings):
    # Seconds before attempt 1, 2, ... (entry i is the delay before attempt i + 1).
    webhook_retry_schedule: str = DEFAULT_SCHEDULE
    # One attempt's whole budget: connect, send, response headers and the body excerpt.
    webhook_timeout_seconds: float = Field(default=15.0, gt=0)
    # Sends in flight to one merchant, across every dispatcher replica.
    webhook_endpoint_concurrency: int = Field(default=4, ge=1)
    # Sends in flight in this process, all merchants together.
    webhook_max_in_flight: int = Field(default=64, ge=1)
    # Fallback poll for due retries; new deliveries wake the loop through LISTEN/NOTIFY.
    webhook_poll_seconds: float = Field(default=0.2, gt=0)
    # A claimed delivery whose dispatcher died is picked up again after this lease.
    webhook_claim_lease_seconds: float = Field(default=60.0, gt=0)
    # Unbroken failures after which a merchant's endpoint is disabled.
    webhook_disable_after_seconds: float = Field(default=FIVE_DAYS, gt=0)
    # Events taken from `webhooks.events` per transaction (fluxpay_common.batch_consumer): one
    # statement and one ack for all the messages already delivered, up to this many.
    webhook_event_batch_size: int = Field(default=50, ge=1)
    # How long a delivery waits for the merchant's endpoint record before `no_endpoint`.
    webhook_endpoint_wait_seconds: float = Field(default=3600.0, ge=0)

    # Local development only: deliver to loopback and private addresses (a receiver on
    # 127.0.0.1 for `make up` and the end-to-end tests), test and live events alike; a live
    # endpoint may then use http to a loopback host. Refused outside `development`.
    webhook_allow_private_destinations: bool = False

    @model_validator(mode="after")
    def _private_destinations_only_in_development(self) -> Settings:
        if self.webhook_allow_private_destinations and self.deployment != "development":
            raise ValueError(
                "FLUXPAY_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS is only allowed in development"
            )
        return self

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule_parses(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @model_validator(mode="after")
    def _lease_outlives_an_attempt(self) -> Settings:
        # A lease shorter than an attempt would let a second dispatcher send it concurrently.
        if self.webhook_claim_lease_seconds < self.webhook_timeout_seconds + 10:
            raise ValueError("webhook_claim_lease_seconds must exceed the timeout by 10 s")
        return self

    @property
    def retry_schedule(self) -> Schedule:
        return parse_schedule(self.webhook_retry_schedule)

    @property
    def disable_after(self) -> timedelta:
        return timedelta(seconds=self.webhook_disable_after_seconds)

    @property
    def endpoint_wait(self) -> timedelta:
        return timedelta(seconds=self.webhook_endpoint_wait_seconds)
