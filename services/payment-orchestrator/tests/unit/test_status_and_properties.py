"""One status vocabulary tied to the wire contract, and properties of the lifecycle: any
sequence of provider reports ends in a state the table allows, and money moves once."""

from __future__ import annotations

import asyncio
import itertools
from typing import get_args

from hypothesis import given, settings
from hypothesis import strategies as st

from fluxpay_common.messages import CancelPayment, ProviderPaymentStatus, RefundView
from fluxpay_common.messages import PaymentStatus as WirePaymentStatus
from payment_orchestrator.domain.state_machine import Transition, Trigger, decide, provider_trigger
from payment_orchestrator.domain.status import (
    OPEN,
    TERMINAL,
    PaymentStatus,
    RefundStatus,
    is_terminal,
)
from payment_orchestrator.service_layer import handlers


def test_the_domain_statuses_are_the_wire_contracts() -> None:
    assert {s.value for s in PaymentStatus} == set(get_args(WirePaymentStatus))
    refund_statuses = get_args(RefundView.model_fields["status"].annotation)
    assert {s.value for s in RefundStatus} == set(refund_statuses)


def test_every_status_is_open_or_terminal_and_every_report_has_a_trigger() -> None:
    assert set(PaymentStatus) == OPEN | TERMINAL and not OPEN & TERMINAL
    assert {provider_trigger(s) for s in get_args(ProviderPaymentStatus)} <= set(Trigger)


# What a payment may be once `n` events happened: reachable through decide from `pending`.
def _reachable() -> set[tuple[PaymentStatus, PaymentStatus]]:
    edges = set()
    for status in PaymentStatus:
        for trigger in Trigger:
            decision = decide(status, trigger)
            if isinstance(decision, Transition):
                edges.add((status, decision.status))
    return edges


EDGES = _reachable()
REPORTS = st.sampled_from(get_args(ProviderPaymentStatus))
STEPS = st.lists(
    st.one_of(REPORTS, st.sampled_from(["cancel", "expire", "redeliver"])), max_size=12
)


@settings(max_examples=150, deadline=None)
@given(steps=STEPS, otp=st.booleans())
def test_any_sequence_of_updates_ends_where_the_table_allows_and_books_once(
    make_world, steps: list[str], otp: bool
) -> None:
    asyncio.run(_play(make_world(), steps, otp))


async def _play(world, steps: list[str], otp: bool) -> None:
    payment = await world.create(operator="coris" if otp else "mtn")
    seen = [payment.status]
    last_update = None
    for step in steps:
        if step == "cancel":
            await world.send(CancelPayment(reference_or_id=payment.reference, **world.scope()))
        elif step == "expire":
            world.expire_all()
            await handlers.expire_due(world.deps)
        elif step == "redeliver" and last_update is not None:
            await handlers.handle_event(last_update, world.deps)
        elif step != "redeliver":
            last_update = world.update(payment, step)
            await handlers.handle_event(last_update, world.deps)
        seen.append(world.payment(payment.id).status)
    # Every move the payment made is an edge of the table.
    for before, after in itertools.pairwise(seen):
        assert before == after or (before, after) in EDGES, (before, after)
    final = world.payment(payment.id)
    completions = world.events(payment).count("collect.payment.completed")
    # Money moves once: one completion at most, and only for a payment that completed.
    assert completions == (1 if final.status is PaymentStatus.COMPLETED else 0)
    assert final.late_success == (completions == 1 and _gave_up_before_success(seen))
    transitions = [t for t in world.store.transitions if t.payment_id == payment.id]
    assert len(transitions) == 1 + sum(b != a for b, a in itertools.pairwise(seen))
    assert is_terminal(final.status) or final.status in OPEN


def _gave_up_before_success(seen: list[PaymentStatus]) -> bool:
    first_success = seen.index(PaymentStatus.COMPLETED)
    given_up = {PaymentStatus.FAILED, PaymentStatus.CANCELLED, PaymentStatus.EXPIRED}
    return any(s in given_up for s in seen[:first_success])
