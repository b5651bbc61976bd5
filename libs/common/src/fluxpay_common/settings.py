"""Typed settings shared by every service; each service subclasses `ServiceSettings`.

Business code never reads `os.environ`: it receives a settings object built here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A development-only key: refused outside `development` so a deployment cannot run on it.
DEV_SECRETS_KEY = "Zmx1eHBheS1kZXYtb25seS1rZXktZG8tbm90LXVzZT0="


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLUXPAY_", extra="ignore")

    deployment: Literal["development", "staging", "production"] = "development"
    rabbitmq_url: SecretStr = Field(
        default=SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        validation_alias="RABBITMQ_URL",
    )
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/test"),
        validation_alias="DATABASE_URL",
    )
    log_level: str = "INFO"
    # Fernet key protecting secrets that must be recoverable (webhook secrets, PSP credentials).
    secrets_key: SecretStr = SecretStr(DEV_SECRETS_KEY)
    db_pool_min: int = 2
    db_pool_max: int = 10
    prefetch: int = 50
    # Transient-failure retries inside a consumer before the message is nacked.
    handler_retry_seconds: float = 30.0
    # Deliveries after which RabbitMQ dead-letters a message that keeps failing.
    delivery_limit: int = 5
    otel_exporter: Literal["none", "console", "otlp"] = "none"

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_development(self) -> ServiceSettings:
        if self.deployment != "development" and (
            self.secrets_key.get_secret_value() == DEV_SECRETS_KEY
        ):
            raise ValueError("FLUXPAY_SECRETS_KEY must be set outside development")
        return self
