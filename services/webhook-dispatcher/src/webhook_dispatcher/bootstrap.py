"""The one place where the dispatcher's dependencies are wired from settings."""

from __future__ import annotations

import asyncpg

from fluxpay_common.crypto import SecretBox
from webhook_dispatcher.adapters.http_sender import WebhookSender
from webhook_dispatcher.config import Settings
from webhook_dispatcher.service_layer.dispatcher import Dispatcher, DispatchPolicy
from webhook_dispatcher.service_layer.handlers import HandlerConfig


def handler_config(settings: Settings, first_attempts: Dispatcher | None = None) -> HandlerConfig:
    return HandlerConfig(
        endpoint_wait=settings.endpoint_wait,
        first_attempts=first_attempts,
        endpoint_concurrency=settings.webhook_endpoint_concurrency,
        lease_seconds=settings.webhook_claim_lease_seconds,
    )


def dispatch_policy(settings: Settings) -> DispatchPolicy:
    return DispatchPolicy(
        schedule=settings.retry_schedule,
        endpoint_concurrency=settings.webhook_endpoint_concurrency,
        max_in_flight=settings.webhook_max_in_flight,
        poll_seconds=settings.webhook_poll_seconds,
        lease_seconds=settings.webhook_claim_lease_seconds,
        disable_after=settings.disable_after,
        endpoint_wait=settings.endpoint_wait,
    )


def secret_box(settings: Settings) -> SecretBox:
    return SecretBox(settings.secrets_key.get_secret_value())


def build_dispatcher(pool: asyncpg.Pool, settings: Settings) -> Dispatcher:
    sender = WebhookSender(
        settings.webhook_timeout_seconds,
        max_connections=settings.webhook_max_in_flight,
        allow_private=settings.webhook_allow_private_destinations,
        keepalive_per_host=settings.webhook_endpoint_concurrency,
    )
    return Dispatcher(pool, sender, secret_box(settings), dispatch_policy(settings))
