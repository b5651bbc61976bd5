from __future__ import annotations

import pytest
from pydantic import ValidationError

from api_gateway.config import Settings


def test_private_webhook_destinations_are_off_by_default_and_refused_outside_development() -> None:
    assert Settings().webhook_allow_private_destinations is False
    assert Settings(webhook_allow_private_destinations=True).webhook_allow_private_destinations
    for deployment in ("staging", "production"):
        with pytest.raises(ValidationError, match="only allowed in development"):
            Settings(
                webhook_allow_private_destinations=True,
                deployment=deployment,
                secrets_key="x" * 43 + "=",
                # Outside development the servers must be named too.
                DATABASE_URL="postgresql://fluxpay:pw@db.internal/fluxpay",
                RABBITMQ_URL="amqp://fluxpay:pw@mq.internal/",
            )
