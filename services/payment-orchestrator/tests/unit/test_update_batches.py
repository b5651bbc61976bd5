"""Provider updates in batches on the fake unit of work: what a batch applies now, what it
leaves for after its commit, and what it found already handled."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from fluxpay_common.messages import ProviderPaymentUpdate, provider_update_id
from payment_orchestrator.domain.status import PaymentStatus as S
from payment_orchestrator.service_layer import handlers
from payment_orchestrator.service_layer.update_batches import on_update_batch, plan_batch
from payment_orchestrator.service_layer.updates import OrderWait


def numbered(payment_id: uuid.UUID, status: str, sequence: int) -> ProviderPaymentUpdate:
    return ProviderPaymentUpdate(
        payment_id=payment_id,
        provider="mtn_momo",
        status=status,  # type: ignore[arg-type]
        sequence=sequence,
        message_id=provider_update_id(payment_id, sequence),
    )


def test_a_batch_applies_a_successor_after_its_predecessor_and_leaves_a_gap_for_later() -> None:
    one, two = sorted([uuid.uuid4(), uuid.uuid4()])
    batch = [
        numbered(one, "completed", 2),
        numbered(two, "completed", 3),
        numbered(one, "processing", 1),
    ]
    plan = plan_batch(batch, {u.message_id for u in batch}, set())
    assert [(u.payment_id, u.sequence) for u in plan.apply] == [(one, 1), (one, 2)]
    assert [(u.payment_id, u.sequence) for u in plan.late] == [(two, 3)]
    assert plan.seen == []


def test_a_predecessor_in_the_inbox_or_handled_before_lets_its_successor_apply() -> None:
    one, two = uuid.uuid4(), uuid.uuid4()
    redelivered = numbered(one, "processing", 1)
    batch = [redelivered, numbered(one, "completed", 2), numbered(two, "completed", 2)]
    claimed = {u.message_id for u in batch[1:]}
    plan = plan_batch(batch, claimed, {provider_update_id(two, 1)})
    assert plan.seen == [redelivered]
    assert {(u.payment_id, u.sequence) for u in plan.apply} == {(one, 2), (two, 2)}
    assert plan.late == []


async def test_a_batch_announces_each_move_once_and_a_redelivery_nothing(make_world) -> None:
    world = make_world()
    payments = [await world.create() for _ in range(2)]
    batch = [
        numbered(p.id, status, sequence)
        for p in payments
        for status, sequence in (("completed", 2), ("processing", 1))
    ]
    await handlers.handle_update_batch(batch, world.deps)
    await handlers.handle_update_batch(batch, world.deps)
    for payment in payments:
        assert world.payment(payment.id).status is S.COMPLETED
        assert world.events(payment) == [
            "collect.payment.created",
            "collect.payment.processing",
            "collect.payment.completed",
        ]


async def test_a_batch_with_an_unknown_payment_applies_nothing(make_world) -> None:
    world = make_world()
    payment = await world.create()
    batch = [numbered(payment.id, "processing", 1), numbered(uuid.uuid4(), "processing", 1)]
    with pytest.raises(LookupError):
        await handlers.handle_update_batch(batch, world.deps)
    assert world.payment(payment.id).status is S.PENDING
    await handlers.handle_update_batch(batch[:1], world.deps)
    assert world.payment(payment.id).status is S.PROCESSING


async def test_updates_after_a_gap_wait_in_order_even_though_the_batch_claimed_them(
    make_world,
) -> None:
    """2 and 3 without 1: 2 is late, so 3 is too (2's claim in the batch is no application)."""
    world = make_world()
    payment = await world.create()
    batch = [numbered(payment.id, "processing", 2), numbered(payment.id, "completed", 3)]
    late = await on_update_batch(batch, world.deps, OrderWait(budget_seconds=0.05))
    assert sorted(late) == [0, 1]
    await asyncio.gather(*(finish() for finish in late.values()))
    assert world.events(payment) == [
        "collect.payment.created",
        "collect.payment.processing",
        "collect.payment.completed",
    ]
