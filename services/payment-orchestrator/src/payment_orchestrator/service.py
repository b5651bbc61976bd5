"""The orchestrator's use cases: each one transaction around the pure state machine.

Commands from the gateway answer with a `Reply`; provider updates and the expiry sweep
change payments and announce the change through the outbox (events to the ledger and the
webhook dispatcher, commands to connectors) in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import asyncpg

from fluxpay_common import catalog
from fluxpay_common.ids import new_id, parse_uuid
from fluxpay_common.inbox import claim, claim_cte
from fluxpay_common.logging import bound_context, get_logger
from fluxpay_common.messages import (
    CancelAtProvider,
    CancelPayment,
    ConfirmPayment,
    CreatePayment,
    ErrorBody,
    GetPayment,
    InitiatePayment,
    LedgerQuery,
    Message,
    OrchestratorCommand,
    PaymentEvent,
    ProviderPaymentUpdate,
    ProviderRefundUpdate,
    RefundAtProvider,
    RefundEvent,
    RefundPayment,
    Reply,
    SelectOperator,
    SubmitOtp,
    SyncStatus,
)
from fluxpay_common.money import to_minor
from fluxpay_common.outbox import add_to_outbox
from fluxpay_common.rpc import RpcTimeout, RpcUnavailable
from fluxpay_common.topology import COMMANDS, EVENTS, connector_key
from payment_orchestrator.domain.routing import route
from payment_orchestrator.domain.state_machine import (
    OPEN,
    PROVIDER_TRIGGERS,
    Refusal,
    Status,
    Transition,
    Trigger,
    decide,
)
from payment_orchestrator.settings import Settings
from payment_orchestrator.views import payment_view, refund_view

log = get_logger(__name__)
# The commands that name an existing payment (by the merchant's reference or by id).
PaymentCommand: TypeAlias = (
    GetPayment | ConfirmPayment | CancelPayment | RefundPayment | SelectOperator
)
CONSUMER = "orchestrator"
# Columns a transition may change besides the status.
_MUTABLE = frozenset(
    {
        "psp_reference",
        "failure_code",
        "failure_message",
        "fee_minor",
        "charged_amount_minor",
        "otp_attempts_left",
        "operator",
        "customer",
        "provider",
        "provider_checkout_url",
    }
)
_EXPIRED = {"failure_code": "expired", "failure_message": "The customer did not pay in time."}
ConnectorCall = Callable[[str, Message], Awaitable[ProviderPaymentUpdate]]
# The merchant's available balance in minor units per currency, from the ledger.
BalanceLookup = Callable[[LedgerQuery], Awaitable[dict[str, int]]]


def _error(
    status: int, code: str, message: str, param: str | None = None, kind: str | None = None
) -> Reply:
    kind = kind or ("api_error" if status >= 500 else "invalid_request_error")
    return Reply(error=ErrorBody(status=status, type=kind, code=code, message=message, param=param))


class PaymentNotFound(Exception):
    """No payment by that reference or id for the merchant in the environment: a 404."""

    def __init__(self, reference_or_id: str) -> None:
        super().__init__(reference_or_id)
        self.reference_or_id = reference_or_id

    def reply(self) -> Reply:
        return _error(
            404,
            "payment_not_found",
            f"No payment '{self.reference_or_id}' for this merchant in this environment.",
            "reference_or_id",
        )


class Orchestrator:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        call_connector: ConnectorCall,
        available_balance: BalanceLookup | None = None,
    ):
        self._pool = pool
        self._settings = settings
        self._call_connector = call_connector
        self._available_balance = available_balance

    # ------------------------------------------------------------ commands (request/reply)

    async def handle_command(self, command: OrchestratorCommand, _: Any = None) -> Reply:
        try:
            match command:
                case CreatePayment():
                    return await self.create(command)
                case GetPayment():
                    return await self.get(command)
                case ConfirmPayment():
                    return await self.confirm(command)
                case CancelPayment():
                    return await self.cancel(command)
                case RefundPayment():
                    return await self.refund(command)
                case SelectOperator():
                    return await self.select_operator(command)
        except PaymentNotFound as missing:
            return missing.reply()
        raise TypeError(f"unhandled command {type(command).__name__}")

    async def create(self, cmd: CreatePayment) -> Reply:
        provider: str | None = None
        status = Status.AWAITING_PAYMENT
        if cmd.mode == "direct":
            provider = route(
                self._settings.routes,
                cmd.environment,
                cmd.country,
                cmd.operator,
                cmd.currency,
                cmd.mode,
                needs_otp=_otp_operator(cmd.country, cmd.operator),
            )
            if provider is None:
                return _no_route(cmd.country, cmd.operator)
            status = (
                Status.AWAITING_OTP
                if _otp_operator(cmd.country, cmd.operator)
                else (Status.PENDING)
            )
        scaled = cmd.expires_in_seconds * self._settings.expiry_time_scale
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO payment (id, merchant_id, environment, reference, idempotency_key,"
                " status, amount, currency, country, mode, operator, customer, description,"
                " callback_url, external_merchant_id, metadata, provider, otp_attempts_left,"
                " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
                " $14, $15, $16, $17, $18, now() + make_interval(secs => $19))"
                " ON CONFLICT (merchant_id, environment, reference) DO NOTHING RETURNING *",
                new_id(),
                cmd.merchant_id,
                cmd.environment,
                cmd.reference,
                cmd.idempotency_key,
                status.value,
                cmd.amount,
                cmd.currency,
                cmd.country,
                cmd.mode,
                cmd.operator if cmd.mode == "direct" else None,
                cmd.customer,
                cmd.description,
                cmd.callback_url,
                cmd.external_merchant_id,
                cmd.metadata,
                provider,
                3 if status is Status.AWAITING_OTP else None,
                scaled,
            )
            if row is None:
                return await self._existing_reference(conn, cmd)
            with bound_context(payment_id=row["id"]):
                await self._record(conn, row["id"], None, row["status"], "created", cmd.message_id)
                await self._emit(conn, "collect.payment.created", row, cmd.correlation_id)
                if provider is not None:
                    await self._initiate(conn, row, cmd.correlation_id)
                log.info("payment_created", status=row["status"], provider=provider)
        return Reply(payment=self._view(row), created=True)

    async def _existing_reference(self, conn: asyncpg.Connection, cmd: CreatePayment) -> Reply:
        row = await conn.fetchrow(
            "SELECT * FROM payment WHERE merchant_id = $1 AND environment = $2 AND reference = $3",
            cmd.merchant_id,
            cmd.environment,
            cmd.reference,
        )
        assert row is not None
        if row["idempotency_key"] == cmd.idempotency_key:
            # The same request again (a gateway retry): answer with the payment it made.
            return Reply(payment=self._view(row), created=False)
        return _error(
            409,
            "reference_already_exists",
            f"A payment with reference '{cmd.reference}' already exists.",
            "reference",
        )

    async def get(self, cmd: GetPayment) -> Reply:
        async with self._pool.acquire() as conn:
            row = await self._find(conn, cmd)
        if cmd.sync and Status(row["status"]) in OPEN and row["provider"]:
            row = await self._sync(row, cmd)
        return Reply(payment=self._view(row))

    async def _sync(self, row: asyncpg.Record, cmd: Message) -> asyncpg.Record:
        request = SyncStatus(
            correlation_id=cmd.correlation_id,
            payment_id=row["id"],
            merchant_id=row["merchant_id"],
            environment=row["environment"],
            provider=row["provider"],
        )
        try:
            update = await self._call_connector(row["provider"], request)
        except (RpcTimeout, RpcUnavailable) as exc:
            log.warning("status_sync_unavailable", error=repr(exc))
            return row
        return await self.apply_provider_update(update) or row

    async def confirm(self, cmd: ConfirmPayment) -> Reply:
        async with self._pool.acquire() as conn:
            row = await self._find(conn, cmd)
        if row["status"] != Status.AWAITING_OTP:
            return _error(
                409,
                "payment_not_awaiting_otp",
                f"This payment is {row['status']}; an OTP is only accepted in awaiting_otp.",
            )
        request = SubmitOtp(
            correlation_id=cmd.correlation_id,
            payment_id=row["id"],
            merchant_id=row["merchant_id"],
            environment=row["environment"],
            provider=row["provider"],
            otp=cmd.otp,
        )
        try:
            update = await self._call_connector(row["provider"], request)
        except (RpcTimeout, RpcUnavailable):
            return _error(
                503,
                "provider_unavailable",
                "The operator did not answer in time; retry the confirmation.",
            )
        if update.failure_code == "otp_not_ready":
            return _error(409, "otp_not_ready", update.failure_message or "Retry shortly.", "otp")
        row = await self.apply_provider_update(update) or row
        if update.failure_code == "otp_invalid":
            left = update.otp_attempts_left
            return _error(
                422,
                "otp_invalid",
                f"Wrong OTP; {left} attempt(s) left." if left is not None else "Wrong OTP.",
                "otp",
            )
        if update.failure_code == "otp_attempts_exceeded":
            return _error(
                422,
                "otp_attempts_exceeded",
                "Too many wrong OTPs: the payment has failed.",
                "otp",
            )
        return Reply(payment=self._view(row))

    async def cancel(self, cmd: CancelPayment) -> Reply:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await self._find(conn, cmd, lock=True)
            row, decision = await self._apply(
                conn,
                row,
                Trigger.MERCHANT_CANCEL,
                "merchant_cancel",
                cmd,
                {"failure_code": "cancelled_by_merchant", "failure_message": cmd.reason},
            )
        if isinstance(decision, Refusal):
            return _error(
                409,
                "payment_not_cancellable",
                f"This payment is {row['status']} and can no longer be cancelled.",
            )
        return Reply(payment=self._view(row))

    async def refund(self, cmd: RefundPayment) -> Reply:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await self._find(conn, cmd, lock=True)
            if cmd.idempotency_key:
                existing = await conn.fetchrow(
                    "SELECT * FROM refund WHERE payment_id = $1 AND idempotency_key = $2",
                    row["id"],
                    cmd.idempotency_key,
                )
                if existing is not None:
                    return Reply(refund=refund_view(existing, row["reference"]), created=False)
            if row["status"] != Status.COMPLETED:
                return _error(
                    409,
                    "payment_not_refundable",
                    f"Only a completed payment can be refunded; this one is {row['status']}.",
                )
            pending = await conn.fetchval(
                "SELECT coalesce(sum(amount), 0)::bigint FROM refund"
                " WHERE payment_id = $1 AND status = 'pending'",
                row["id"],
            )
            remaining = row["amount"] - row["refunded_amount"] - pending
            amount = remaining if cmd.amount is None else cmd.amount
            if amount <= 0 and cmd.amount is None:
                return _error(
                    409,
                    "refund_already_pending",
                    "Refunds already pending cover the whole payment.",
                )
            if amount <= 0:
                return _error(422, "amount_invalid", "A refund amount must be positive.", "amount")
            if amount > remaining:
                return _error(
                    422,
                    "refund_exceeds_payment",
                    f"At most {remaining} {row['currency']} of this payment can still be refunded.",
                    "amount",
                )
            if refused := await self._refund_exceeds_balance(conn, cmd, row, amount):
                return refused
            refund = await conn.fetchrow(
                "INSERT INTO refund (id, payment_id, merchant_id, environment, idempotency_key,"
                " status, amount, currency, reason, metadata)"
                " VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9) RETURNING *",
                new_id(),
                row["id"],
                row["merchant_id"],
                row["environment"],
                cmd.idempotency_key,
                amount,
                row["currency"],
                cmd.reason,
                cmd.metadata,
            )
            await add_to_outbox(
                conn,
                COMMANDS,
                connector_key(row["provider"]),
                RefundAtProvider(
                    correlation_id=cmd.correlation_id,
                    payment_id=row["id"],
                    merchant_id=row["merchant_id"],
                    environment=row["environment"],
                    provider=row["provider"],
                    refund_id=refund["id"],
                    amount=amount,
                    currency=row["currency"],
                    psp_reference=row["psp_reference"],
                    phone=(row["customer"] or {}).get("phone"),
                ),
            )
            log.info("refund_requested", refund_id=str(refund["id"]), amount=amount)
        return Reply(refund=refund_view(refund, row["reference"]), created=True)

    async def _refund_exceeds_balance(
        self, conn: asyncpg.Connection, cmd: RefundPayment, row: asyncpg.Record, amount: int
    ) -> Reply | None:
        """A refund is paid from the merchant's available balance: refuse what it cannot cover.

        Available = the ledger's balance minus refunds accepted here and not yet booked.
        """
        if self._available_balance is None:
            return None
        query = LedgerQuery(
            type="ledger.balance",
            correlation_id=cmd.correlation_id,
            merchant_id=row["merchant_id"],
            environment=row["environment"],
        )
        try:
            balances = await self._available_balance(query)
        except (RpcTimeout, RpcUnavailable):
            return _error(
                503,
                "balance_unavailable",
                "The merchant's balance could not be read; retry the refund shortly.",
            )
        pending = await conn.fetchval(
            "SELECT coalesce(sum(amount), 0)::bigint FROM refund WHERE merchant_id = $1"
            " AND environment = $2 AND currency = $3 AND status = 'pending'",
            row["merchant_id"],
            row["environment"],
            row["currency"],
        )
        available = balances.get(row["currency"], 0) - to_minor(pending)
        if to_minor(amount) <= available:
            return None
        return _error(
            422,
            "insufficient_balance",
            f"Your available balance ({max(available, 0) // 100} {row['currency']}) does not"
            f" cover this refund of {amount} {row['currency']}.",
            "amount",
        )

    async def select_operator(self, cmd: SelectOperator) -> Reply:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await self._find(conn, cmd, lock=True)
            provider = route(
                self._settings.routes,
                row["environment"],
                row["country"],
                cmd.operator,
                row["currency"],
                row["mode"],
                needs_otp=_otp_operator(row["country"], cmd.operator),
            )
            if provider is None:
                return _no_route(row["country"], cmd.operator)
            customer = {**(row["customer"] or {}), "phone": cmd.phone}
            changes: dict[str, Any] = {
                "operator": cmd.operator,
                "customer": customer,
                "provider": provider,
            }
            otp = _otp_operator(row["country"], cmd.operator)
            if otp:
                changes["otp_attempts_left"] = 3
            row, decision = await self._apply(
                conn, row, Trigger.OPERATOR_SELECTED, "operator_selected", cmd, changes
            )
            if isinstance(decision, Refusal):
                return _error(
                    409,
                    "payment_not_awaiting_payment",
                    f"This payment is {row['status']}; the customer can no longer choose.",
                )
            if otp:
                row, _ = await self._apply(
                    conn, row, Trigger.PROVIDER_AWAITING_OTP, "otp_operator", cmd
                )
            await self._initiate(conn, row, cmd.correlation_id)
        return Reply(payment=self._view(row))

    # ------------------------------------------------------------ provider updates

    async def handle_provider_update(
        self, update: ProviderPaymentUpdate | ProviderRefundUpdate, _: Any = None
    ) -> None:
        if isinstance(update, ProviderRefundUpdate):
            await self.apply_refund_update(update)
        else:
            await self.apply_provider_update(update)

    async def apply_provider_update(self, update: ProviderPaymentUpdate) -> asyncpg.Record | None:
        """Apply a connector's report once (inbox); returns the payment as it now stands."""
        async with self._pool.acquire() as conn, conn.transaction():
            # The inbox claim and the payment's lock in one round trip.
            row = await conn.fetchrow(
                f"WITH {claim_cte(2, 3)}"
                " SELECT p.*, EXISTS (SELECT 1 FROM claimed) AS first_time"
                " FROM payment p WHERE p.id = $1 FOR UPDATE OF p",
                update.payment_id,
                update.message_id,
                CONSUMER,
            )
            if row is None:
                # Never silently dropped: the consumer nacks (the claim rolls back with the
                # transaction) and the DLQ keeps it.
                raise LookupError(f"provider update for unknown payment {update.payment_id}")
            if not row["first_time"]:
                return row
            changes: dict[str, Any] = {"otp_attempts_left": update.otp_attempts_left}
            if update.psp_reference:
                changes["psp_reference"] = update.psp_reference
            if update.failure_code:
                changes["failure_code"] = update.failure_code
                changes["failure_message"] = update.failure_message
            if update.fee_minor is not None:
                changes["fee_minor"] = update.fee_minor
            if update.charged_amount_minor is not None:
                changes["charged_amount_minor"] = update.charged_amount_minor
            if update.checkout_url:
                changes["provider_checkout_url"] = update.checkout_url
            trigger = PROVIDER_TRIGGERS[update.status]
            row, decision = await self._apply(
                conn, row, trigger, f"provider:{update.provider}", update, changes
            )
            if isinstance(decision, Refusal):
                log.warning(
                    "provider_update_ignored",
                    status=row["status"],
                    reported=update.status,
                    reason=decision.reason,
                )
            return row

    async def apply_refund_update(self, update: ProviderRefundUpdate) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            if not await claim(conn, update.message_id, CONSUMER):
                return
            payment = await conn.fetchrow(
                "SELECT * FROM payment WHERE id = $1 FOR UPDATE", update.payment_id
            )
            refund = await conn.fetchrow(
                "SELECT * FROM refund WHERE id = $1 FOR UPDATE", update.refund_id
            )
            if payment is None or refund is None:
                raise LookupError(f"refund update for unknown refund {update.refund_id}")
            if refund["status"] != "pending":
                log.warning("refund_update_ignored", refund_status=refund["status"])
                return
            refund = await conn.fetchrow(
                "UPDATE refund SET status = $2, psp_reference = $3, failure_code = $4,"
                " failure_message = $5, completed_at = now() WHERE id = $1 RETURNING *",
                refund["id"],
                update.status,
                update.psp_reference,
                update.failure_code,
                update.failure_message,
            )
            if update.status == "completed":
                payment = await conn.fetchrow(
                    "UPDATE payment SET refunded_amount = refunded_amount + $2,"
                    " updated_at = now(), version = version + 1 WHERE id = $1 RETURNING *",
                    payment["id"],
                    refund["amount"],
                )
                if payment["refunded_amount"] == payment["amount"]:
                    payment, _ = await self._apply(
                        conn, payment, Trigger.FULLY_REFUNDED, "fully_refunded", update
                    )
            event_type = f"collect.refund.{update.status}"
            await add_to_outbox(
                conn,
                EVENTS,
                event_type,
                RefundEvent(
                    type=event_type,  # type: ignore[arg-type]
                    correlation_id=update.correlation_id,
                    merchant_id=payment["merchant_id"],
                    environment=payment["environment"],
                    provider=payment["provider"],
                    callback_url=payment["callback_url"],
                    payment=self._view(payment),
                    refund=refund_view(refund, payment["reference"]),
                ),
            )
            log.info("refund_settled", refund_id=str(refund["id"]), status=update.status)

    # ------------------------------------------------------------ expiry

    async def expire_due(self, batch: int = 100) -> int:
        """Expire open payments past their deadline; returns how many were expired."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT * FROM payment WHERE status = ANY($1::text[]) AND expires_at <= now()"
                " ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                [s.value for s in OPEN],
                batch,
            )
            for row in rows:
                with bound_context(payment_id=row["id"]):
                    await self._apply(conn, row, Trigger.EXPIRE, "expired", None, _EXPIRED)
                    log.info("payment_expired")
        return len(rows)

    # ------------------------------------------------------------ internals

    def _view(self, row: asyncpg.Record) -> Any:
        return payment_view(row, self._settings.checkout_base_url, self._settings.ledger_fees)

    async def _find(
        self, conn: asyncpg.Connection, cmd: PaymentCommand, *, lock: bool = False
    ) -> asyncpg.Record:
        """The payment a merchant's command names (by reference or id), or PaymentNotFound."""
        row = await conn.fetchrow(
            "SELECT * FROM payment WHERE merchant_id = $1 AND environment = $2"
            " AND (reference = $3 OR id = $4) ORDER BY (id = $4) DESC NULLS LAST LIMIT 1"
            + (" FOR UPDATE" if lock else ""),
            cmd.merchant_id,
            cmd.environment,
            cmd.reference_or_id,
            parse_uuid(cmd.reference_or_id),
        )
        if row is None:
            raise PaymentNotFound(cmd.reference_or_id)
        return row

    async def _apply(
        self,
        conn: asyncpg.Connection,
        row: asyncpg.Record,
        trigger: Trigger,
        reason: str,
        cause: Message | None,
        changes: dict[str, Any] | None = None,
    ) -> tuple[asyncpg.Record, Transition | Refusal]:
        """Decide and persist one transition of a locked payment, with its outbox messages."""
        decision = decide(Status(row["status"]), trigger)
        if isinstance(decision, Refusal):
            return row, decision
        updates = {k: v for k, v in (changes or {}).items() if k in _MUTABLE}
        if not decision.changed:
            updates.pop("failure_code", None)
            updates.pop("failure_message", None)
        if decision.status is Status.COMPLETED and decision.changed:
            # A late success overrides the failure or expiry recorded before it.
            updates.setdefault("failure_code", None)
            updates.setdefault("failure_message", None)
        if not decision.changed and not any(
            row[k] != v for k, v in updates.items() if v is not None
        ):
            return row, decision
        assignments = [f"{column} = ${i}" for i, column in enumerate(updates, start=3)]
        n = len(updates) + 3
        update_sql = (
            "UPDATE payment SET status = $2, updated_at = now(), version = version + 1,"
            " completed_at = CASE WHEN $2 = 'completed' THEN now() ELSE completed_at END,"
            f" late_success = late_success OR ${n}"
            + "".join(f", {a}" for a in assignments)
            + " WHERE id = $1 RETURNING *"
        )
        args = [row["id"], decision.status.value, *updates.values(), decision.late_success]
        if not decision.changed:
            return await conn.fetchrow(update_sql, *args), decision
        # The new state and its transition record in one statement (one round trip).
        row = await conn.fetchrow(
            f"WITH updated AS ({update_sql}), recorded AS ("
            " INSERT INTO payment_transition (payment_id, from_status, to_status, reason,"
            f" message_id) SELECT id, ${n + 1}, status, ${n + 2}, ${n + 3} FROM updated)"
            " SELECT * FROM updated",
            *args,
            decision.previous.value,
            reason,
            cause.message_id if cause is not None else None,
        )
        correlation_id = cause.correlation_id if cause is not None else ""
        if decision.event is not None:
            await self._emit(
                conn, decision.event, row, correlation_id, late_success=decision.late_success
            )
        if decision.late_success:
            log.warning("late_success_recorded", previous=decision.previous.value)
        if decision.cancel_at_provider and row["provider"]:
            await add_to_outbox(
                conn,
                COMMANDS,
                connector_key(row["provider"]),
                CancelAtProvider(
                    correlation_id=correlation_id,
                    payment_id=row["id"],
                    merchant_id=row["merchant_id"],
                    environment=row["environment"],
                    provider=row["provider"],
                ),
            )
        return row, decision

    async def _record(
        self,
        conn: asyncpg.Connection,
        payment_id: uuid.UUID,
        previous: str | None,
        status: str,
        reason: str,
        message_id: uuid.UUID | None,
    ) -> None:
        await conn.execute(
            "INSERT INTO payment_transition (payment_id, from_status, to_status, reason,"
            " message_id) VALUES ($1, $2, $3, $4, $5)",
            payment_id,
            previous,
            status,
            reason,
            message_id,
        )

    async def _emit(
        self,
        conn: asyncpg.Connection,
        event_type: str,
        row: asyncpg.Record,
        correlation_id: str,
        *,
        late_success: bool = False,
    ) -> None:
        await add_to_outbox(
            conn,
            EVENTS,
            event_type,
            PaymentEvent(
                type=event_type,  # type: ignore[arg-type]
                correlation_id=correlation_id,
                merchant_id=row["merchant_id"],
                environment=row["environment"],
                provider=row["provider"],
                callback_url=row["callback_url"],
                payment=self._view(row),
                late_success=late_success,
                fee_minor=row["fee_minor"],
                charged_amount_minor=row["charged_amount_minor"],
            ),
        )

    async def _initiate(
        self, conn: asyncpg.Connection, row: asyncpg.Record, correlation_id: str
    ) -> None:
        customer = row["customer"] or {}
        await add_to_outbox(
            conn,
            COMMANDS,
            connector_key(row["provider"]),
            InitiatePayment(
                correlation_id=correlation_id,
                payment_id=row["id"],
                merchant_id=row["merchant_id"],
                environment=row["environment"],
                provider=row["provider"],
                reference=row["reference"],
                amount=row["amount"],
                currency=row["currency"],
                country=row["country"],
                operator=row["operator"],
                phone=customer.get("phone"),
                customer=customer or None,
                description=row["description"],
                expires_at=row["expires_at"],
            ),
        )


def _no_route(country: str, operator: str | None) -> Reply:
    if _otp_operator(country, operator):
        message = (
            f"{operator} in {country} confirms payments by OTP, and no live provider offers"
            " an OTP confirmation yet: choose another operator."
        )
    else:
        message = f"No provider carries {operator} in {country} yet."
    return _error(422, "operator_unavailable", message, "operator")


def _otp_operator(country: str, operator: str | None) -> bool:
    found = catalog.find_operator(country, operator or "")
    return bool(found and found.otp_required)
