"""One handler per command and event the orchestrator consumes; routing in two visible maps.

Commands (request/reply from the gateway) answer a `Reply` or raise a `CommandRefused` that
becomes an error reply (the gateway picks the HTTP status from its code). Provider updates
and the expiry sweep change payments and announce each change through the outbox (events to
the ledger and the webhook dispatcher, commands to connectors) in the same unit of work.
The handlers live in `payments.py`, `refunds.py`, `updates.py` and `listing.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fluxpay_common.batch_consumer import Late
from fluxpay_common.messages import (
    CancelPayment,
    ConfirmPayment,
    CreatePayment,
    ErrorBody,
    GetPayment,
    InspectPayment,
    ListPayments,
    ListRefunds,
    Message,
    ProviderPaymentUpdate,
    ProviderRefundUpdate,
    QueryReply,
    RefundPayment,
    Reply,
    SelectOperator,
    SettledMovementsQuery,
)
from payment_orchestrator.domain.errors import (
    CommandRefused,
)
from payment_orchestrator.service_layer.dependencies import CONSUMER, Dependencies, Policy
from payment_orchestrator.service_layer.listing import list_payments, list_refunds
from payment_orchestrator.service_layer.payments import (
    cancel_payment,
    confirm_payment,
    create_payment,
    get_payment,
    select_operator,
)
from payment_orchestrator.service_layer.refunds import on_refund_update, refund_payment
from payment_orchestrator.service_layer.update_batches import on_update_batch
from payment_orchestrator.service_layer.updates import (
    expire_due,
    inspect_payment,
    on_published_update,
    settled_movements,
)

__all__ = [
    "CONSUMER",
    "Dependencies",
    "Policy",
    "expire_due",
    "handle_command",
    "handle_event",
    "handle_update_batch",
]


CommandHandler = Callable[[Any, Dependencies], Awaitable[Reply | QueryReply]]


EventHandler = Callable[[Any, Dependencies], Awaitable[Any]]


COMMAND_HANDLERS: dict[type, CommandHandler] = {
    CreatePayment: create_payment,
    GetPayment: get_payment,
    ConfirmPayment: confirm_payment,
    CancelPayment: cancel_payment,
    RefundPayment: refund_payment,
    SelectOperator: select_operator,
    SettledMovementsQuery: settled_movements,
    ListPayments: list_payments,
    ListRefunds: list_refunds,
    InspectPayment: inspect_payment,
}


EVENT_HANDLERS: dict[type, EventHandler] = {
    ProviderPaymentUpdate: on_published_update,
    ProviderRefundUpdate: on_refund_update,
}


async def handle_command(command: Message, deps: Dependencies) -> Reply | QueryReply:
    """A command's reply; a refusal becomes an error reply (the gateway picks the HTTP status)."""
    try:
        return await COMMAND_HANDLERS[type(command)](command, deps)
    except CommandRefused as refused:
        return Reply(error=error_body(refused))


async def handle_event(event: Message, deps: Dependencies) -> None:
    await EVENT_HANDLERS[type(event)](event, deps)


async def handle_update_batch(
    updates: Sequence[ProviderPaymentUpdate | ProviderRefundUpdate], deps: Dependencies
) -> Late:
    """The provider updates queue, consumed in batches: `update_batches.on_update_batch`
    (returns the updates left to finish after the batch, for the consumer to run)."""
    return await on_update_batch(updates, deps)


def error_body(refused: CommandRefused) -> ErrorBody:
    return ErrorBody(
        type="api_error" if refused.server_side else "invalid_request_error",
        code=refused.code,
        message=refused.message,
        param=refused.param,
    )
