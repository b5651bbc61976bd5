"""Versioned wire contracts between services.

Every message carries `message_id`, `correlation_id`, `occurred_at` and `schema_version`
and a `type` literal that names it. An additive field has a default and keeps the version;
a breaking change is a new version published beside the old until consumers move.
Wire contracts are not internal domain events.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from fluxpay_common.ids import new_id, utcnow

Environment = Literal["test", "live"]
PaymentStatus = Literal[
    "pending",
    "processing",
    "awaiting_otp",
    "awaiting_payment",
    "completed",
    "failed",
    "cancelled",
    "expired",
    "refunded",
]
API_VERSION = "2026-06"


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    message_id: uuid.UUID = Field(default_factory=new_id)
    correlation_id: str = ""
    occurred_at: datetime = Field(default_factory=utcnow)
    schema_version: int = 1

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


# ---------------------------------------------------------------- shared views


NextActionType = Literal["redirect_to_checkout", "await_customer_validation", "confirm_otp", "none"]
# The seed types `NextAction.message` as a string (never null): each type has its sentence.
NEXT_ACTION_MESSAGES: dict[str, str] = {
    "await_customer_validation": "Le client doit valider le paiement sur son téléphone.",
    "confirm_otp": "Saisissez le code OTP reçu par le client (POST /confirm).",
    "redirect_to_checkout": "Redirigez le client vers la page de paiement.",
    "none": "Aucune action requise.",
}


class NextAction(BaseModel):
    type: NextActionType
    message: str = ""
    checkout_url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _message_of_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("message"):
            return {**data, "message": NEXT_ACTION_MESSAGES.get(str(data.get("type")), "")}
        return data


class PaymentView(BaseModel):
    """The seed's `CollectPayment`, as the orchestrator knows it (no `idempotent_replay`)."""

    model_config = ConfigDict(extra="ignore")

    object: Literal["collect.payment"] = "collect.payment"
    api_version: str = API_VERSION
    id: uuid.UUID
    reference: str
    status: PaymentStatus
    amount: int
    amount_minor: int
    currency: str
    country: str
    mode: Literal["direct", "hosted"]
    operator: str | None = None
    customer: dict[str, Any] | None = None
    next_action: NextAction
    checkout_url: str | None = None
    psp_reference: str | None = None
    expires_at: datetime | None = None
    environment: Environment
    created_at: datetime
    completed_at: datetime | None = None
    # Beyond the seed (additive): what the merchant sent and why a payment failed.
    description: str | None = None
    external_merchant_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    refunded_amount: int = 0
    failure_code: str | None = None
    failure_message: str | None = None
    # The platform's fee on this payment and what the merchant receives (minor units).
    platform_fee_minor: int | None = None
    net_amount_minor: int | None = None
    # The provider that carried the payment (None until routed: a hosted one before the
    # payer's choice).
    provider: str | None = None


class RefundView(BaseModel):
    """The seed's `CollectRefund`."""

    object: Literal["collect.refund"] = "collect.refund"
    id: uuid.UUID
    payment_id: uuid.UUID
    reference: str
    status: Literal["pending", "completed", "failed"]
    amount: int
    currency: str
    reason: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    failure_code: str | None = None
    # Additive: the PSP's reference of the refund, and why a failed one failed.
    psp_reference: str | None = None
    failure_message: str | None = None


class ErrorBody(BaseModel):
    """An error a service returns; the gateway renders it as the seed's ApiError.

    The gateway picks the HTTP status from the code (`api_gateway.errors.STATUS_BY_CODE`);
    `status` is only a fallback for codes it does not list (services need not set it).
    """

    code: str
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    status: int | None = None


# ---------------------------------------------------------------- commands to the orchestrator
# Routing key `orchestrator` on `fluxpay.commands`; most are request/reply from the gateway.


class MerchantScoped(Message):
    merchant_id: uuid.UUID
    environment: Environment


class CreatePayment(MerchantScoped):
    type: Literal["payment.create"] = "payment.create"
    idempotency_key: str
    reference: str
    amount: int
    currency: str
    country: str
    mode: Literal["direct", "hosted"] = "direct"
    operator: str | None = None
    customer: dict[str, Any] | None = None
    description: str | None = None
    callback_url: str | None = None
    expires_in_seconds: int = 900
    external_merchant_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class GetPayment(MerchantScoped):
    type: Literal["payment.get"] = "payment.get"
    reference_or_id: str
    sync: bool = False


class ConfirmPayment(MerchantScoped):
    type: Literal["payment.confirm"] = "payment.confirm"
    reference_or_id: str
    otp: str


class CancelPayment(MerchantScoped):
    type: Literal["payment.cancel"] = "payment.cancel"
    reference_or_id: str
    reason: str | None = None


class RefundPayment(MerchantScoped):
    type: Literal["payment.refund"] = "payment.refund"
    reference_or_id: str
    idempotency_key: str | None = None
    amount: int | None = None
    reason: str = "customer_dispute"
    metadata: dict[str, Any] = Field(default_factory=dict)


class SelectOperator(MerchantScoped):
    """The hosted checkout page's customer chose an operator and phone: go direct."""

    type: Literal["payment.select_operator"] = "payment.select_operator"
    reference_or_id: str
    operator: str
    phone: str


class ListFilter(MerchantScoped):
    """A merchant's list (newest first), filtered, one page after the `starting_after` id:
    keyset pagination on (created_at, id), so a page never shifts when payments arrive.
    Answered with `QueryReply(data={"object": "list", "data": [...], "has_more": bool})`."""

    status: str | None = None
    operator: str | None = None
    provider: str | None = None
    country: str | None = None
    currency: str | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None
    reference_prefix: str | None = None
    limit: int = Field(default=20, ge=1, le=500)
    starting_after: uuid.UUID | None = None


class ListPayments(ListFilter):
    type: Literal["payment.list"] = "payment.list"


class ListRefunds(ListFilter):
    """Refunds; the payment filters (operator, provider, country, reference) apply to the
    refunded payment; `payment` (a reference or id) narrows to one payment's refunds."""

    type: Literal["refund.list"] = "refund.list"
    payment: str | None = None


class SettledMovementsQuery(Message):
    """Ledger -> orchestrator (request/reply), for reconciliation: the payments collected and
    the refunds paid out, either in the window [start, end) of their `completed_at` (with
    the optional provider, environment and merchant), or those named by id wherever they
    fell. The orchestrator's door to its day: no other service reads its schema.
    Answered with `QueryReply(data={"movements": [SettledMovement...]})`."""

    type: Literal["orchestrator.settled_movements"] = "orchestrator.settled_movements"
    start: datetime | None = None
    end: datetime | None = None
    provider: str | None = None
    environment: Environment | None = None
    merchant_id: uuid.UUID | None = None
    payment_ids: list[uuid.UUID] = Field(default_factory=list)
    refund_ids: list[uuid.UUID] = Field(default_factory=list)


class SettledMovement(BaseModel):
    """A payment collected or a refund paid out, as the orchestrator recorded it (v1)."""

    kind: Literal["payment", "refund"]
    payment_id: uuid.UUID
    refund_id: uuid.UUID | None = None
    environment: Environment
    currency: str
    amount_minor: int
    # What the PSP charged for a payment (0 when it did not say); 0 for a refund.
    psp_fee_minor: int = 0
    completed_at: datetime


class InspectPayment(Message):
    """Operator CLI -> orchestrator (request/reply): the payments `lookup` names (an id, a
    merchant's reference or a PSP reference; any merchant), each with its transitions and
    refunds, for `fluxpay-admin inspect`. Answered `QueryReply(data={"payments": [...]})`."""

    type: Literal["orchestrator.inspect"] = "orchestrator.inspect"
    lookup: str = Field(min_length=1, max_length=200)


class InspectHoldings(Message):
    """Operator CLI -> ledger, webhook dispatcher or a connector (request/reply): what that
    service holds about one payment (journal entries and holds; events, deliveries and
    attempts; provider attempts, refunds and callbacks). Answered `QueryReply(data={...})`."""

    payment_id: uuid.UUID


class LedgerInspect(InspectHoldings):
    type: Literal["ledger.inspect"] = "ledger.inspect"


class WebhooksInspect(InspectHoldings):
    type: Literal["webhooks.inspect"] = "webhooks.inspect"


class ConnectorInspect(InspectHoldings):
    type: Literal["connector.inspect"] = "connector.inspect"


OrchestratorCommand = Annotated[
    CreatePayment
    | GetPayment
    | ConfirmPayment
    | CancelPayment
    | RefundPayment
    | SelectOperator
    | SettledMovementsQuery
    | ListPayments
    | ListRefunds
    | InspectPayment,
    Field(discriminator="type"),
]
orchestrator_command_adapter: TypeAdapter[OrchestratorCommand] = TypeAdapter(OrchestratorCommand)


class Reply(BaseModel):
    """Answer to a request/reply command: a payment, a refund, or an error."""

    payment: PaymentView | None = None
    refund: RefundView | None = None
    error: ErrorBody | None = None
    created: bool = False


# ---------------------------------------------------------------- commands to a connector
# Routing key `connector.<provider>` on `fluxpay.commands`.


class ConnectorCommand(Message):
    payment_id: uuid.UUID
    merchant_id: uuid.UUID
    environment: Environment
    provider: str


class InitiatePayment(ConnectorCommand):
    type: Literal["provider.initiate"] = "provider.initiate"
    reference: str
    amount: int
    currency: str
    country: str
    operator: str | None = None
    phone: str | None = None
    customer: dict[str, Any] | None = None
    description: str | None = None
    expires_at: datetime | None = None


class SubmitOtp(ConnectorCommand):
    type: Literal["provider.submit_otp"] = "provider.submit_otp"
    otp: str
    # The payment's InitiatePayment (same message id as the one in the outbox): this request
    # travels directly and may overtake it; a connector that has not seen it starts from it.
    initiate: InitiatePayment | None = None


class CancelAtProvider(ConnectorCommand):
    type: Literal["provider.cancel"] = "provider.cancel"


class RefundAtProvider(ConnectorCommand):
    type: Literal["provider.refund"] = "provider.refund"
    refund_id: uuid.UUID
    amount: int
    currency: str
    psp_reference: str | None = None
    phone: str | None = None


class SyncStatus(ConnectorCommand):
    type: Literal["provider.sync"] = "provider.sync"
    # As on SubmitOtp: the initiate this request may overtake.
    initiate: InitiatePayment | None = None


ProviderCommand = Annotated[
    InitiatePayment | SubmitOtp | CancelAtProvider | RefundAtProvider | SyncStatus,
    Field(discriminator="type"),
]
# What a connector's queue carries: the orchestrator's commands, and the operator's inspect.
provider_command_adapter: TypeAdapter[ProviderCommand] = TypeAdapter(ProviderCommand)


# Operator CLI -> one connector (request/reply on the same key): the review queue lives in
# the connectors' schema, so only a connector lists or resolves it. Answered with
# `QueryReply(data=...)`, or an error naming why not (`review_not_found`, ...).


class ListProviderReviews(Message):
    """The connector's open reviews (oldest first) and their count."""

    type: Literal["provider.list_reviews"] = "provider.list_reviews"
    limit: int = 100


class ResolveProviderReview(Message):
    """Settle a reviewed attempt as an operator decided; applied like the PSP's word."""

    type: Literal["provider.resolve_review"] = "provider.resolve_review"
    payment_id: uuid.UUID
    outcome: Literal["paid", "failed"]
    reason: str
    actor: str
    psp_reference: str | None = None


ReviewRequest = ListProviderReviews | ResolveProviderReview
# Everything a connector's `connector.<provider>` routing key carries.
ConnectorMessage = Annotated[
    InitiatePayment
    | SubmitOtp
    | CancelAtProvider
    | RefundAtProvider
    | SyncStatus
    | ListProviderReviews
    | ResolveProviderReview
    | ConnectorInspect,
    Field(discriminator="type"),
]
connector_message_adapter: TypeAdapter[ConnectorMessage] = TypeAdapter(ConnectorMessage)


# ---------------------------------------------------------------- normalized PSP updates
# Exchange `fluxpay.provider`, routing key `provider.<provider>.<status>`.

ProviderPaymentStatus = Literal[
    "processing", "awaiting_otp", "awaiting_payment", "completed", "failed", "cancelled"
]


class ProviderPaymentUpdate(Message):
    type: Literal["provider.payment_update"] = "provider.payment_update"
    payment_id: uuid.UUID
    provider: str
    status: ProviderPaymentStatus
    psp_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    fee_minor: int | None = None
    charged_amount_minor: int | None = None
    checkout_url: str | None = None
    otp_attempts_left: int | None = None
    # The connector numbers the updates it publishes for one payment (1, 2, ...), their
    # message id derived from it (`provider_update_id`): the orchestrator applies update n
    # after n-1, however the queue's consumers interleave them. None on a direct reply
    # (an OTP confirmation, a status sync), applied at once.
    sequence: int | None = None


def provider_update_id(payment_id: uuid.UUID, sequence: int) -> uuid.UUID:
    """The message id of a payment's `sequence`-th published provider update."""
    return uuid.uuid5(payment_id, f"provider-payment-update:{sequence}")


class ProviderRefundUpdate(Message):
    type: Literal["provider.refund_update"] = "provider.refund_update"
    payment_id: uuid.UUID
    refund_id: uuid.UUID
    provider: str
    status: Literal["completed", "failed"]
    psp_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


ProviderUpdate = Annotated[
    ProviderPaymentUpdate | ProviderRefundUpdate, Field(discriminator="type")
]
provider_update_adapter: TypeAdapter[ProviderUpdate] = TypeAdapter(ProviderUpdate)


# ---------------------------------------------------------------- domain events
# Exchange `fluxpay.events`, routing key = event type. `message_id` is the event id the
# merchant sees in the webhook, stable across retries.

PaymentEventType = Literal[
    "collect.payment.created",
    "collect.payment.processing",
    "collect.payment.completed",
    "collect.payment.failed",
    "collect.payment.cancelled",
    "collect.payment.expired",
]
RefundEventType = Literal["collect.refund.completed", "collect.refund.failed"]


class PaymentEvent(Message):
    type: PaymentEventType
    merchant_id: uuid.UUID
    environment: Environment
    provider: str | None = None
    callback_url: str | None = None
    payment: PaymentView
    # A PSP success that arrived after a local expiry or cancel: money moved all the same.
    late_success: bool = False
    fee_minor: int | None = None
    # Additive: what the customer paid in all (amount + a PSP fee borne by the customer).
    charged_amount_minor: int | None = None


class RefundEvent(Message):
    type: RefundEventType
    merchant_id: uuid.UUID
    environment: Environment
    provider: str | None = None
    callback_url: str | None = None
    payment: PaymentView
    refund: RefundView


class DueEvent(Message):
    """Gateway -> webhooks: a payer's due for one period was issued. `payment` is the
    payment the payer pays it with (hosted: its `checkout_url` is the link to send the
    payer; direct: the push already started); `due` is the due as the API shows it."""

    type: Literal["collect.due.issued"] = "collect.due.issued"
    merchant_id: uuid.UUID
    environment: Environment
    callback_url: str | None = None
    payment: PaymentView
    due: dict[str, Any]


class SealedSecret(BaseModel):
    """A webhook signing secret, sealed (Fernet under the platform secrets key)."""

    model_config = ConfigDict(frozen=True)

    sealed: str
    # None for the current secret; a previous one keeps signing until then (its overlap).
    expires_at: datetime | None = None


class MerchantEndpointChanged(Message):
    """Gateway -> dispatcher: a merchant's webhook endpoint and its secrets (encrypted)."""

    type: Literal["merchant.endpoint_changed"] = "merchant.endpoint_changed"
    merchant_id: uuid.UUID
    webhook_url: str | None
    # Fernet tokens under the platform secrets key; the newest first. Several during rotation.
    webhook_secrets_sealed: list[str]
    secret_overlap_until: datetime | None = None
    # Additive: the environment whose endpoint this is (each has its own URL and secrets).
    # None: a change published before endpoints were per environment; it applies to both.
    environment: Environment | None = None
    # Additive: every secret that signs, newest first, each with its own expiry. None: an
    # older publisher; `webhook_secrets_sealed` then share `secret_overlap_until`.
    secrets: list[SealedSecret] | None = None


DomainEvent = Annotated[
    PaymentEvent | RefundEvent | DueEvent | MerchantEndpointChanged, Field(discriminator="type")
]
domain_event_adapter: TypeAdapter[DomainEvent] = TypeAdapter(DomainEvent)


# ---------------------------------------------------------------- merchant queries (request/reply)
# Gateway -> ledger (`fluxpay.commands` / `ledger`) and gateway -> webhook dispatcher
# (`fluxpay.commands` / `webhooks`): what the merchant API reads from services it does not own.


class LedgerQuery(MerchantScoped):
    type: Literal["ledger.balance", "ledger.transactions"]
    limit: int = 20
    starting_after: str | None = None


class ReserveRefund(MerchantScoped):
    """Orchestrator -> ledger (request/reply): hold a refund's amount on the merchant's
    available balance before the refund is accepted. Idempotent by `refund_id`: asking
    again answers as the first time. Answered with `QueryReply(data=hold_body)`."""

    type: Literal["ledger.reserve_refund"] = "ledger.reserve_refund"
    refund_id: uuid.UUID
    payment_id: uuid.UUID
    currency: str
    amount_minor: int = Field(gt=0)


class ReleaseRefundHold(MerchantScoped):
    """Orchestrator -> ledger (through the outbox, no reply): the refund the hold was
    placed for was not accepted after all; the held amount is available again."""

    type: Literal["ledger.release_refund_hold"] = "ledger.release_refund_hold"
    refund_id: uuid.UUID


class ReconcileDay(Message):
    """Operator CLI -> ledger (request/reply): the day's reconciliation report (orchestrator
    against the books). Answered with `QueryReply(data=<the report's JSON body>)`."""

    type: Literal["ledger.reconcile"] = "ledger.reconcile"
    day: date
    provider: str | None = None
    environment: Environment | None = None
    merchant_id: uuid.UUID | None = None


# Everything the ledger's `ledger` routing key carries.
LedgerRequest = Annotated[
    LedgerQuery | ReserveRefund | ReleaseRefundHold | ReconcileDay | LedgerInspect,
    Field(discriminator="type"),
]


class WebhooksCommand(MerchantScoped):
    type: Literal[
        "webhooks.list_events",
        "webhooks.get_event",
        "webhooks.replay_event",
        "webhooks.replay_failed",
        "webhooks.send_test",
        "webhooks.get_endpoint",
        # The merchant's test events since `since`, signed now (the gateway's event stream).
        "webhooks.stream_events",
    ]
    event_id: str | None = None
    since: datetime | None = None
    limit: int = 20
    starting_after: str | None = None
    event_type: str | None = None


class QueryReply(BaseModel):
    """Answer to a merchant query: JSON-ready data in the API's shape, or an error."""

    data: Any = None
    error: ErrorBody | None = None


ledger_query_adapter: TypeAdapter[LedgerQuery] = TypeAdapter(LedgerQuery)
ledger_request_adapter: TypeAdapter[LedgerRequest] = TypeAdapter(LedgerRequest)
webhooks_command_adapter: TypeAdapter[WebhooksCommand] = TypeAdapter(WebhooksCommand)
# What the dispatcher's `webhooks` routing key carries: the gateway's merchant commands and
# the operator's inspect.
webhooks_request_adapter: TypeAdapter[WebhooksCommand | WebhooksInspect] = TypeAdapter(
    WebhooksCommand | WebhooksInspect
)
