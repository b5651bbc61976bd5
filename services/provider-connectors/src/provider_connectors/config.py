"""Settings of a connector process (env prefix `FLUXPAY_`); one provider per process.

Every PSP's base URL, credentials and callback secret come from here, so a real PSP (or
any server speaking its protocol) is one setting away. The defaults point at the local
simulators (`fluxpay-psp-sim`) with development credentials; outside `development` a
connector refuses to start on a development credential.
"""

from __future__ import annotations

from pydantic import SecretStr, model_validator

from fluxpay_common.settings import ServiceSettings

DEV_PREFIX = "dev-"


class Settings(ServiceSettings):
    provider: str = "sandbox"
    # Embedded HTTP server for PSP callbacks (`/callbacks/<provider>`); off when unset.
    connector_http_port: int | None = None
    connector_http_host: str = "127.0.0.1"
    # How often the durable poller looks for due attempts, and how long a claimed attempt
    # stays reserved to its poller (also the retry delay after a PSP outage).
    connector_poll_interval_seconds: float = 0.2
    connector_poll_lease_seconds: float = 30.0
    connector_poll_batch: int = 50
    # Calls to a PSP: per-try timeout and bounded retries (timeouts, 429, 5xx).
    psp_timeout_seconds: float = 10.0
    psp_retry_attempts: int = 3
    psp_retry_backoff_seconds: float = 0.5

    # Seconds the simulated sandbox customer takes to answer.
    sandbox_delay_seconds: float = 1.0

    # Novasend payin (seed 002). Novasend asks for polls no more often than every 5 s.
    novasend_base_url: str = "http://127.0.0.1:9101"
    novasend_api_key: SecretStr = SecretStr("dev-novasend-api-key")
    novasend_api_client: SecretStr = SecretStr("dev-novasend-api-client")
    novasend_account_id: str = "dev-fluxpay-account"
    novasend_webhook_secret: SecretStr = SecretStr("dev-novasend-webhook-secret")
    novasend_poll_seconds: float = 5.0

    # MTN MoMo Open API: collection (requesttopay) and disbursement (refunds).
    mtn_momo_base_url: str = "http://127.0.0.1:9102"
    mtn_momo_target_environment: str = "sandbox"
    mtn_momo_api_user: str = "dev-mtn-momo-api-user"
    mtn_momo_api_key: SecretStr = SecretStr("dev-mtn-momo-api-key")
    mtn_momo_subscription_key: SecretStr = SecretStr("dev-mtn-momo-collection-key")
    mtn_momo_disbursement_api_user: str = "dev-mtn-momo-disbursement-user"
    mtn_momo_disbursement_api_key: SecretStr = SecretStr("dev-mtn-momo-disbursement-api-key")
    mtn_momo_disbursement_subscription_key: SecretStr = SecretStr("dev-mtn-momo-disbursement-key")
    # Public URL of this connector's `/callbacks/mtn_momo`, sent as X-Callback-Url; unset:
    # no callbacks (polling only). MTN does not sign callbacks: the URL carries a
    # per-payment HMAC token under this secret.
    mtn_momo_callback_url: str | None = None
    mtn_momo_callback_secret: SecretStr = SecretStr("dev-mtn-momo-callback-secret")
    mtn_momo_poll_seconds: float = 5.0

    # IremboPay (seed 001; API v2): invoices, then a mobile-money push in RWF (MTN, Airtel)
    # or the invoice's payment link (banks, cards).
    irembopay_base_url: str = "http://127.0.0.1:9103"
    irembopay_secret_key: SecretStr = SecretStr("dev-irembopay-secret-key")
    irembopay_payment_account_identifier: str = "dev-irembopay-rwf-account"
    irembopay_product_code: str = "dev-irembopay-product"
    # Notifications are signed with the merchant secret key unless a distinct secret is set.
    irembopay_webhook_secret: SecretStr | None = None
    irembopay_language: str = "EN"
    irembopay_poll_seconds: float = 5.0

    # Stripe (seed 003): cards through hosted Checkout Sessions.
    stripe_base_url: str = "http://127.0.0.1:9104"
    stripe_secret_key: SecretStr = SecretStr("dev-stripe-secret-key")
    stripe_webhook_secret: SecretStr = SecretStr("dev-stripe-webhook-secret")
    stripe_api_version: str = "2024-06-20"
    # Where Checkout sends the card holder back; `{payment_id}` is replaced. Unset: the
    # payment's own hosted page, `{checkout_base_url}/{payment_id}`, which shows its outcome.
    stripe_success_url: str | None = None
    stripe_cancel_url: str | None = None
    stripe_webhook_tolerance_seconds: int = 300
    stripe_poll_seconds: float = 5.0

    # The gateway's hosted pages (shared `FLUXPAY_CHECKOUT_BASE_URL`).
    checkout_base_url: str = "http://127.0.0.1:8000/checkout"

    @property
    def stripe_return_urls(self) -> tuple[str, str]:
        page = f"{self.checkout_base_url.rstrip('/')}/{{payment_id}}"
        return (
            self.stripe_success_url or f"{page}?stripe=success",
            self.stripe_cancel_url or f"{page}?stripe=cancel",
        )

    @model_validator(mode="after")
    def _refuse_dev_credentials_outside_development(self) -> Settings:
        if self.deployment == "development":
            return self
        prefix = f"{self.provider}_"
        for name, value in self:
            if name.startswith(prefix) and _is_dev_value(value):
                raise ValueError(f"FLUXPAY_{name.upper()} must be set outside development")
        return self


def _is_dev_value(value: object) -> bool:
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    return isinstance(raw, str) and raw.startswith(DEV_PREFIX)
