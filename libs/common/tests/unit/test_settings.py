"""Outside development a service refuses development secrets and placeholders, by name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fluxpay_common.settings import ServiceSettings

REAL = {
    "secrets_key": "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMDAwMDA=",
    "DATABASE_URL": "postgresql://fluxpay:pw@db.internal:5432/fluxpay",
    "RABBITMQ_URL": "amqp://fluxpay:pw@mq.internal:5672/",
}


def test_production_settings_start_with_every_secret_set() -> None:
    settings = ServiceSettings(deployment="production", **REAL)
    assert settings.database_url.get_secret_value() == REAL["DATABASE_URL"]


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("DATABASE_URL", None, "DATABASE_URL"),
        ("RABBITMQ_URL", None, "RABBITMQ_URL"),
        ("secrets_key", None, "FLUXPAY_SECRETS_KEY"),
        ("secrets_key", "dev-replace-me", "FLUXPAY_SECRETS_KEY"),
        ("DATABASE_URL", "dev-replace-me", "DATABASE_URL"),
    ],
)
def test_missing_or_placeholder_secret_is_refused_by_name(
    field: str, value: str | None, variable: str
) -> None:
    given = {k: v for k, v in REAL.items() if k != field}
    if value is not None:
        given[field] = value
    with pytest.raises(ValidationError, match=f"{variable} must be set outside development"):
        ServiceSettings(deployment="staging", **given)


def test_development_keeps_its_local_defaults() -> None:
    assert ServiceSettings().deployment == "development"
