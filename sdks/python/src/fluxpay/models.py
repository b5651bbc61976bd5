"""Typed objects of the FluxPay API, from the seed's schemas (`CollectPayment`,
`CollectRefund`, `NextAction`, `WebhookEvent`, `ApiError`) and the merchant API beyond it
(balance, events and their deliveries, webhook endpoint).

Every model accepts fields it does not know yet (`extra="allow"`) and every enumerated
value is typed as its known values *or* a string, so a field or status the API adds later
never breaks an integration that is already live.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field

PaymentStatus: TypeAlias = Literal[
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
RefundStatus: TypeAlias = Literal["pending", "completed", "failed"]
NextActionType: TypeAlias = Literal[
    "redirect_to_checkout", "await_customer_validation", "confirm_otp", "none"
]
Mode: TypeAlias = Literal["direct", "hosted"]
Environment: TypeAlias = Literal["test", "live"]
Country: TypeAlias = Literal["BJ", "TG", "CI"]
Currency: TypeAlias = Literal["XOF", "XAF"]
EventType: TypeAlias = Literal[
    "collect.payment.created",
    "collect.payment.processing",
    "collect.payment.completed",
    "collect.payment.failed",
    "collect.payment.cancelled",
    "collect.payment.expired",
    "collect.refund.completed",
    "collect.refund.failed",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]


class FluxPayObject(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Customer(FluxPayObject):
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class NextAction(FluxPayObject):
    """What the customer (or the merchant) must do next."""

    type: NextActionType | str
    message: str | None = None
    checkout_url: str | None = None


class Payment(FluxPayObject):
    """The seed's `CollectPayment`. `amount` is in major units (3000 = 3 000 XOF)."""

    object: Literal["collect.payment"] = "collect.payment"
    api_version: str | None = None
    id: str
    reference: str
    status: PaymentStatus | str
    amount: int
    amount_minor: int | None = None
    currency: str
    country: str
    mode: Mode | str
    operator: str | None = None
    customer: Customer | None = None
    next_action: NextAction | None = None
    checkout_url: str | None = None
    psp_reference: str | None = None
    expires_at: datetime | None = None
    idempotent_replay: bool = False
    environment: Environment | str
    created_at: datetime
    completed_at: datetime | None = None
    description: str | None = None
    external_merchant_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    refunded_amount: int = 0
    failure_code: str | None = None
    failure_message: str | None = None
    platform_fee_minor: int | None = None
    net_amount_minor: int | None = None
    provider: str | None = None


class Refund(FluxPayObject):
    """The seed's `CollectRefund`."""

    object: Literal["collect.refund"] = "collect.refund"
    id: str
    payment_id: str
    reference: str
    status: RefundStatus | str
    amount: int
    currency: str
    reason: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    failure_code: str | None = None


class Operator(FluxPayObject):
    code: str
    name: str
    country: str
    currency: str
    otp_required: bool
    phone_prefixes: list[str] = Field(default_factory=list)


class CountryOperators(FluxPayObject):
    """One country of the operator catalogue (`GET /collect/payments/operators/`)."""

    country: str
    name: str
    currency: str
    dialing_code: str
    operators: list[Operator]


class BalanceAmount(FluxPayObject):
    currency: str
    amount: int
    amount_minor: int


class Balance(FluxPayObject):
    """Available balance per currency in the key's environment."""

    object: Literal["balance"] = "balance"
    environment: Environment | str
    available: list[BalanceAmount]


class BalanceTransaction(FluxPayObject):
    """A journal entry behind the balance: a payment credited or a refund debited."""

    object: Literal["balance_transaction"] = "balance_transaction"
    id: str
    type: str
    payment_id: str
    refund_id: str | None = None
    reference: str | None = None
    currency: str
    amount: int
    amount_minor: int
    fee_minor: int | None = None
    net_minor: int | None = None
    late_success: bool = False
    effective_at: datetime
    created_at: datetime


class DeliverySummary(FluxPayObject):
    id: str
    status: str
    attempts: int | None = None
    next_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None


class DeliveryAttempt(FluxPayObject):
    attempt: int
    at: datetime | None = None
    status_code: int | None = None
    error: str | None = None
    duration_ms: int | None = None
    url: str | None = None
    response_excerpt: str | None = None


class Delivery(FluxPayObject):
    id: str
    status: str
    created_at: datetime | None = None
    completed_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    attempts: list[DeliveryAttempt] = Field(default_factory=list)


class EventData(FluxPayObject):
    """`data.object` is the payment; refund events add `data.refund`."""

    object: Payment
    refund: Refund | None = None


class Event(FluxPayObject):
    """The seed's `WebhookEvent`: what a webhook delivers and `events.retrieve` returns
    (the latter with the delivery log in `deliveries`)."""

    id: str
    object: Literal["event"] = "event"
    api_version: str | None = None
    type: EventType | str
    created: int
    environment: Environment | str
    merchant_id: str | None = None
    data: EventData
    test: bool = False
    delivery: DeliverySummary | None = None
    deliveries: list[Delivery] = Field(default_factory=list)


class EventSummary(FluxPayObject):
    """An entry of `events.list`: the event without its body, and its latest delivery."""

    id: str
    object: Literal["event"] = "event"
    type: EventType | str
    created: int
    environment: Environment | str
    test: bool = False
    delivery: DeliverySummary | None = None


class EventReplay(FluxPayObject):
    """A replay was scheduled: `event_id` is delivered again (same id, new signature)."""

    object: Literal["event_replay"] = "event_replay"
    event_id: str | None = None
    delivery_id: str | None = None
    status: str | None = None
    replayed: int | None = None


class WebhookEndpoint(FluxPayObject):
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str | None = None
    status: Literal["enabled", "disabled"] | str
    disabled_reason: str | None = None
    disabled_at: datetime | None = None
    failing_since: datetime | None = None
    secret_rotation_overlap_until: datetime | None = None


class WebhookSecret(FluxPayObject):
    """A new signing secret, shown once; the previous one signs too until the date given."""

    object: Literal["webhook_secret"] = "webhook_secret"
    secret: str
    previous_secret_expires_at: datetime | None = None


class ApiKey(FluxPayObject):
    """An API key as listed: never its secret, except in `secret` the one time it is made."""

    object: Literal["api_key"] = "api_key"
    id: str
    name: str
    role: Literal["full", "payments_write", "read_only"] | str
    environment: Environment | str
    prefix: str | None = None
    last4: str | None = None
    created_at: datetime
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    revoked: bool = False
    revoked_at: datetime | None = None
    rotated_to: str | None = None
    secret: str | None = None
    # On a rotation: the key it replaces, valid until its `expires_at`.
    previous_key: ApiKey | None = None


class PaymentLink(FluxPayObject):
    """A reusable or single-use link to a hosted payment (`url`); a fixed `amount`, or the
    payer chooses within `min_amount`/`max_amount`. `usage_count` counts completed payments."""

    object: Literal["payment_link"] = "payment_link"
    id: str
    slug: str
    url: str
    active: bool
    environment: Environment | str
    amount: int | None = None
    min_amount: int | None = None
    max_amount: int | None = None
    currency: str
    country: str
    description: str | None = None
    usage_limit: int | None = None
    usage_count: int = 0
    payments_in_progress: int = 0
    expires_at: datetime | None = None
    is_expired: bool = False
    usage_limit_reached: bool = False
    can_pay: bool = True
    created_at: datetime


class PaymentType(FluxPayObject):
    """What payers owe: recurring (`interval` monthly or weekly, on `due_day`) or one-off
    (`due_date`); `delivery` `link` (a hosted payment in the webhook) or `push`."""

    object: Literal["payment_type"] = "payment_type"
    id: str
    name: str
    amount: int
    currency: str
    country: str
    recurring: bool
    interval: Literal["monthly", "weekly"] | str | None = None
    due_day: int | None = None
    due_date: str | None = None
    delivery: Literal["link", "push"] | str = "link"
    active: bool = True
    environment: Environment | str
    created_at: datetime


class Payer(FluxPayObject):
    object: Literal["payer"] = "payer"
    id: str
    payment_type_id: str
    name: str
    phone: str
    operator: str
    active: bool = True
    enrolled_at: datetime


class DuePayer(FluxPayObject):
    id: str
    name: str
    phone: str
    operator: str


class Due(FluxPayObject):
    """A payer's due for one period: `issued`, `paid`, `overdue` or `cancelled`."""

    object: Literal["collect.due"] = "collect.due"
    id: str
    payment_type_id: str
    payer: DuePayer
    period: str
    due_date: str
    amount: int
    currency: str
    status: Literal["issuing", "issued", "paid", "overdue", "cancelled"] | str
    payment_id: str | None = None
    checkout_url: str | None = None
    environment: Environment | str
    created_at: datetime | None = None
    issued_at: datetime | None = None
    paid_at: datetime | None = None


class DuesRun(FluxPayObject):
    object: Literal["dues_run"] = "dues_run"
    date: str
    recorded: int = 0
    issued: int = 0
    overdue: int = 0


class ErrorDetail(FluxPayObject):
    """The seed's `ApiError.error`."""

    type: str | None = None
    code: str | None = None
    message: str | None = None
    param: str | None = None
    doc_url: str | None = None


class ApiErrorBody(FluxPayObject):
    error: ErrorDetail


T = TypeVar("T", bound=BaseModel)


class ListObject(FluxPayObject, Generic[T]):
    """One page of a list: `data` and whether more follow (`has_more`)."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool = False
