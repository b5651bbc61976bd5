"""Typed settings shared by every service; each service subclasses `ServiceSettings`.

Business code never reads `os.environ`: it receives a settings object built here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A development-only key: refused outside `development` so a deployment cannot run on it.
DEV_SECRETS_KEY = "Zmx1eHBheS1kZXYtb25seS1rZXktZG8tbm90LXVzZT0="
PLACEHOLDER_PREFIX = "dev-"
DEV_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEV_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLUXPAY_", extra="ignore")

    deployment: Literal["development", "staging", "production"] = "development"
    rabbitmq_url: SecretStr = Field(
        default=SecretStr(DEV_RABBITMQ_URL),
        validation_alias="RABBITMQ_URL",
    )
    database_url: SecretStr = Field(
        default=SecretStr(DEV_DATABASE_URL),
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
    # `/healthz` and `/readyz` of a process without an HTTP server of its own; off when
    # unset (many processes share one machine under `make up`). The gateway answers them on
    # its own port, a connector with a callback port on that port.
    health_host: str = "127.0.0.1"
    health_port: int | None = None

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_development(self) -> ServiceSettings:
        if self.deployment == "development":
            return self
        # Each carries a password (or is the key itself): a deployment names its own. A
        # `dev-` value is a placeholder (deploy/k8s/secrets.example.yaml) left unset.
        for variable, value, default in (
            ("FLUXPAY_SECRETS_KEY", self.secrets_key, DEV_SECRETS_KEY),
            ("DATABASE_URL", self.database_url, DEV_DATABASE_URL),
            ("RABBITMQ_URL", self.rabbitmq_url, DEV_RABBITMQ_URL),
        ):
            raw = value.get_secret_value()
            if raw == default or raw.startswith(PLACEHOLDER_PREFIX):
                raise ValueError(f"{variable} must be set outside development")
        return self
