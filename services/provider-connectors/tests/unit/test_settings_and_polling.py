"""Connector settings fail fast outside development; the polling cadence backs off."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from provider_connectors.config import Settings
from provider_connectors.connectors.polling import next_poll_at
from provider_connectors.connectors.stripe.transformers import return_url
from provider_connectors.domain.model import Attempt

REAL_KEY = "Zmx1eHBheS1yZWFsLWtleS1mb3ItdGVzdHMtb25seT0="
# Outside development the servers' URLs must be named too (they carry passwords).
SERVERS = {
    "DATABASE_URL": "postgresql://fluxpay:pw@db.internal/fluxpay",
    "RABBITMQ_URL": "amqp://fluxpay:pw@mq.internal/",
}
START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_development_credentials_are_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="FLUXPAY_NOVASEND_API_KEY"):
        Settings(deployment="production", secrets_key=REAL_KEY, provider="novasend", **SERVERS)


def test_real_credentials_are_accepted_in_production() -> None:
    settings = Settings(
        deployment="production",
        secrets_key=REAL_KEY,
        provider="novasend",
        **SERVERS,
        novasend_api_key="live-key",
        novasend_api_client="live-client",
        novasend_account_id="acct_1",
        novasend_webhook_secret="whsec_live",
    )
    assert settings.novasend_api_key.get_secret_value() == "live-key"


def test_sandbox_needs_no_psp_credentials_in_production() -> None:
    assert Settings(deployment="production", secrets_key=REAL_KEY, **SERVERS).provider == "sandbox"


def _attempt(expires_in: timedelta | None) -> Attempt:
    return Attempt(
        payment_id=uuid.uuid4(),
        provider="novasend",
        merchant_id=uuid.uuid4(),
        environment="live",
        reference="r",
        amount=100,
        currency="XOF",
        operator=None,
        phone=None,
        psp_reference=None,
        status="processing",
        next_poll_at=None,
        expires_at=START + expires_in if expires_in else None,
        otp_attempts=0,
        created_at=START,
        updated_at=START,
        data={},
    )


def test_polls_often_at_first_then_less_then_stops_a_day_after_expiry() -> None:
    attempt = _attempt(timedelta(minutes=15))
    every = timedelta(seconds=5)
    assert next_poll_at(attempt, START + timedelta(seconds=10), every) == START + timedelta(
        seconds=15
    )
    later = START + timedelta(minutes=5)
    assert next_poll_at(attempt, later, every) == later + timedelta(seconds=30)
    expired = START + timedelta(minutes=20)
    assert next_poll_at(attempt, expired, every) == expired + timedelta(minutes=5)
    assert next_poll_at(attempt, START + timedelta(hours=25), every) is None


def test_stripe_returns_the_card_holder_to_the_payments_own_page() -> None:
    success, cancel = Settings(checkout_base_url="https://pay.example/checkout").stripe_return_urls
    assert success == "https://pay.example/checkout/{payment_id}?stripe=success"
    assert cancel == "https://pay.example/checkout/{payment_id}?stripe=cancel"
    attempt = _attempt(None)
    assert return_url(success, attempt) == (
        f"https://pay.example/checkout/{attempt.payment_id}?stripe=success"
    )
