"""The orchestrator's handlers on the in-memory unit of work, with fake connectors and a
fake ledger: a `World` per test (`make_world()`), no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from fluxpay_common.fees import FeeSchedule
from fluxpay_common.messages import (
    CreatePayment,
    Message,
    PaymentEvent,
    ProviderPaymentUpdate,
    ProviderRefundUpdate,
    RefundEvent,
    RefundPayment,
    Reply,
    ReserveRefund,
)
from fluxpay_common.rpc import RpcTimeout
from payment_orchestrator.adapters.memory import MemoryStore
from payment_orchestrator.domain.payment import Payment
from payment_orchestrator.service_layer import handlers
from payment_orchestrator.service_layer.handlers import Dependencies, Policy

# Coris confirms by OTP: it goes to the sandbox, the one provider with an OTP flow.
ROUTES = {"BJ:mtn": "mtn_momo", "BJ:coris": "sandbox", "*:card": "stripe"}


@dataclass
class FakeLedger:
    """Holds refunds against `available_minor` as the ledger does (idempotent by refund id)."""

    available_minor: int = 10_000_000
    holds: dict[uuid.UUID, int] = field(default_factory=dict)
    unavailable: bool = False
    # Runs inside the request, to play what happens meanwhile elsewhere.
    meanwhile: Callable[[], Any] | None = None

    async def __call__(self, request: ReserveRefund) -> tuple[bool, int]:
        if self.unavailable:
            raise RpcTimeout("ledger")
        if self.meanwhile is not None:
            action, self.meanwhile = self.meanwhile, None
            await action()
        available = self.available_minor - sum(self.holds.values())
        if request.refund_id in self.holds:
            return True, available + self.holds[request.refund_id]
        if request.amount_minor > available:
            return False, available
        self.holds[request.refund_id] = request.amount_minor
        return True, available


@dataclass
class FakeConnector:
    """Answers synchronous requests with the next scripted update (or a timeout)."""

    script: list[Callable[[Message], ProviderPaymentUpdate | Exception]] = field(
        default_factory=list
    )
    requests: list[Message] = field(default_factory=list)

    async def __call__(self, provider: str, request: Message) -> ProviderPaymentUpdate:
        self.requests.append(request)
        answer = self.script.pop(0)(request)
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class World:
    store: MemoryStore = field(default_factory=MemoryStore)
    ledger: FakeLedger = field(default_factory=FakeLedger)
    connector: FakeConnector = field(default_factory=FakeConnector)
    merchant_id: uuid.UUID = field(default_factory=uuid.uuid4)
    environment: str = "live"
    routes: dict[str, str] = field(default_factory=lambda: dict(ROUTES))

    @property
    def deps(self) -> Dependencies:
        return Dependencies(
            open_uow=self.store.open_uow,
            call_connector=self.connector,
            reserve_refund=self.ledger,
            policy=Policy(self.routes, "https://pay.test/checkout", FeeSchedule()),
        )

    def scope(self) -> dict[str, Any]:
        return {"merchant_id": self.merchant_id, "environment": self.environment}

    async def send(self, command: Message) -> Reply:
        return await handlers.handle_command(command, self.deps)

    async def create(self, **fields: Any) -> Payment:
        body: dict[str, Any] = {
            "idempotency_key": str(uuid.uuid4()),
            "reference": f"order-{uuid.uuid4().hex[:8]}",
            "amount": 3000,
            "currency": "XOF",
            "country": "BJ",
            "operator": "mtn",
            "customer": {"phone": "+22997000001"},
            **self.scope(),
            **fields,
        }
        reply = await self.send(CreatePayment(**body))
        assert reply.payment is not None, reply.error
        return self.payment(reply.payment.id)

    def payment(self, payment_id: uuid.UUID) -> Payment:
        return self.store.payments[payment_id]

    def update(self, payment: Payment, status: str, **fields: Any) -> ProviderPaymentUpdate:
        return ProviderPaymentUpdate(
            payment_id=payment.id,
            provider=payment.provider or "sandbox",
            status=status,  # type: ignore[arg-type]
            **fields,
        )

    async def report(self, payment: Payment, status: str, **fields: Any) -> Payment:
        await handlers.handle_event(self.update(payment, status, **fields), self.deps)
        return self.payment(payment.id)

    async def completed(self, amount: int = 3000) -> Payment:
        return await self.report(await self.create(amount=amount), "completed", fee_minor=100)

    async def refund(self, payment: Payment, amount: int | None = None, **fields: Any) -> Reply:
        return await self.send(
            RefundPayment(reference_or_id=str(payment.id), amount=amount, **self.scope(), **fields)
        )

    async def settle_refund(
        self, reply: Reply, status: str = "completed", **fields: Any
    ) -> Payment:
        assert reply.refund is not None, reply.error
        update = ProviderRefundUpdate(
            payment_id=reply.refund.payment_id,
            refund_id=reply.refund.id,
            provider="mtn_momo",
            status=status,  # type: ignore[arg-type]
            **fields,
        )
        await handlers.handle_event(update, self.deps)
        return self.payment(reply.refund.payment_id)

    def expire_all(self) -> None:
        """Moves the clock past every deadline."""
        self.store.now += timedelta(days=1)

    def events(self, payment: Payment) -> list[str]:
        return [
            m.type
            for m in self.store.published("collect.")
            if isinstance(m, PaymentEvent | RefundEvent) and m.payment.id == payment.id
        ]

    def commands(self, kind: type[Message]) -> list[Any]:
        return [m for m in self.store.published("connector.") if isinstance(m, kind)]


@pytest.fixture(scope="session")
def make_world() -> Callable[..., World]:
    """A factory (session-scoped, so hypothesis may call it once per example)."""
    return World
