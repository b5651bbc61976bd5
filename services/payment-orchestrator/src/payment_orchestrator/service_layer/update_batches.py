"""Provider updates in batches (`fluxpay_common.batch_consumer`): the updates already
delivered, for many payments, applied in one transaction and acknowledged with one ack.

The guarantees of the one-by-one path (`updates.on_published_update`) hold:
- each update once: its inbox claim commits with its effect; a redelivered batch finds
  every applied update in the inbox and changes nothing;
- a few statements per batch, not per update: BEGIN, one statement that locks the
  payments, claims the updates and looks for their predecessors, one save per change (its
  transition and outbox rows in it), COMMIT; the outbox rows of the whole batch go to the
  relay once it committed;
- an unknown payment raises before anything is written: the consumer narrows the batch
  down to one message at a time, the others go through, the unknown one is nacked until
  the queue's delivery limit dead-letters it;
- per-payment order: a payment's updates in the batch apply in `sequence` order inside the
  transaction. One whose predecessor is neither applied (inbox) nor earlier in the batch is
  left out of the transaction (unclaimed) and handed back to the consumer as late
  (`batch_consumer.Late`): it goes through the one-by-one path, which waits for its
  predecessor up to its budget and then applies it anyway, as before, while the consumer
  goes on with the next batches (where the predecessor may be) and acknowledges it once
  applied;
- the payments are locked in id order, in one statement, before anything is written: two
  batches that share payments queue on the first one, they never deadlock (the other
  writers lock one payment, or skip locked rows: the expiry sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fluxpay_common.batch_consumer import Late, traceparent_of
from fluxpay_common.logging import bound_context, get_logger
from fluxpay_common.messages import (
    ProviderPaymentUpdate,
    ProviderRefundUpdate,
    provider_update_id,
)
from fluxpay_common.tracing import continued
from payment_orchestrator.service_layer.dependencies import CONSUMER, Dependencies
from payment_orchestrator.service_layer.refunds import on_refund_update
from payment_orchestrator.service_layer.updates import (
    DEFAULT_ORDER_WAIT,
    OrderWait,
    apply_update,
    on_published_update,
)

log = get_logger(__name__)


async def on_update_batch(
    messages: Sequence[ProviderPaymentUpdate | ProviderRefundUpdate],
    deps: Dependencies,
    wait: OrderWait = DEFAULT_ORDER_WAIT,
) -> Late:
    """Delivery order: each run of payment updates in one transaction, a refund update on
    its own in between (what follows it sees it, as one by one it would). Returns the
    updates left for later (by index in `messages`) and how each is finished: the consumer
    acknowledges them once finished, and goes on with the next batches meanwhile."""
    late: list[ProviderPaymentUpdate] = []
    run: list[ProviderPaymentUpdate] = []
    for message in messages:
        if isinstance(message, ProviderPaymentUpdate):
            run.append(message)
            continue
        if run:
            late += await on_payment_updates(run, deps)
            run = []
        with _context(message):
            await on_refund_update(message, deps)
    if run:
        late += await on_payment_updates(run, deps)
    index = {id(m): i for i, m in enumerate(messages)}
    finishing: dict[int, Callable[[], Awaitable[None]]] = {}
    # A payment's late updates one after the other, in sequence order: each waits out its
    # own budget only once the one before it is done.
    last: dict[uuid.UUID, asyncio.Event] = {}
    for update in late:
        done = asyncio.Event()
        after, last[update.payment_id] = last.get(update.payment_id), done
        finish = functools.partial(finish_late, update, deps, wait, after, done)
        finishing[index[id(update)]] = finish
    return finishing


async def finish_late(
    update: ProviderPaymentUpdate,
    deps: Dependencies,
    wait: OrderWait = DEFAULT_ORDER_WAIT,
    after: asyncio.Event | None = None,
    done: asyncio.Event | None = None,
) -> None:
    """A late update, one by one (after `after`): it waits for its predecessor (up to
    `wait`), then applies."""
    try:
        if after is not None:
            await after.wait()
        with _context(update):
            await on_published_update(update, deps, wait)
    finally:
        if done is not None:
            done.set()


async def on_payment_updates(
    updates: Sequence[ProviderPaymentUpdate], deps: Dependencies
) -> list[ProviderPaymentUpdate]:
    """Apply the updates once each, in one transaction (see the module's guarantees);
    returns the late ones (not applied, not claimed), in sequence order."""
    unique = list({u.message_id: u for u in updates}.values())  # a publisher's duplicate
    async with deps.open_uow() as uow:
        claim = await uow.claim_and_lock_many(
            [u.payment_id for u in unique],
            [u.message_id for u in unique],
            CONSUMER,
            [p for u in unique if (p := _predecessor(u)) is not None],
        )
        unknown = sorted({u.payment_id for u in unique} - claim.payments.keys())
        if unknown:
            # Never dropped: the claims roll back, the consumer handles the batch one by one.
            raise LookupError(f"provider updates for unknown payments {unknown}")
        plan = plan_batch(unique, claim.claimed, claim.applied)
        if plan.late:
            # The claim's look may predate a predecessor committed while it waited for a
            # lock (its snapshot is older): a second look spares a wait.
            missing = [p for u in plan.late if (p := _predecessor(u)) is not None]
            # Our own claims are in the inbox too: a late predecessor is not applied.
            seen = await uow.handled_among(missing) - claim.claimed
            if seen:
                plan = plan_batch(unique, claim.claimed, claim.applied | seen)
        if plan.late:
            await uow.unclaim([u.message_id for u in plan.late])
        payments = claim.payments
        for update in plan.apply:
            with _context(update):
                payment = payments[update.payment_id]
                payments[update.payment_id] = await apply_update(uow, deps, payment, update)
    for update in plan.seen:
        with _context(update):
            log.info("message_already_handled")
    return plan.late


@dataclass
class BatchPlan:
    """`apply`: in this transaction, by payment id then sequence; `late`: after it, one by
    one (predecessor not seen yet), in sequence order; `seen`: handled before."""

    apply: list[ProviderPaymentUpdate] = field(default_factory=list)
    late: list[ProviderPaymentUpdate] = field(default_factory=list)
    seen: list[ProviderPaymentUpdate] = field(default_factory=list)


def plan_batch(
    updates: Sequence[ProviderPaymentUpdate], claimed: set[uuid.UUID], inbox: set[uuid.UUID]
) -> BatchPlan:
    """Split a batch: `claimed`, the updates new to the inbox (the others were handled
    before); `inbox`, the predecessors known to be applied."""
    plan = BatchPlan()
    applied = set(inbox)
    # Unnumbered updates (direct replies) have no predecessor: first, in delivery order.
    for update in sorted(updates, key=lambda u: (u.payment_id, u.sequence or 0)):
        previous = _predecessor(update)
        if update.message_id not in claimed:
            plan.seen.append(update)
            applied.add(update.message_id)
        elif previous is None or previous in applied:
            plan.apply.append(update)
            applied.add(update.message_id)
        else:
            plan.late.append(update)
    return plan


def _predecessor(update: ProviderPaymentUpdate) -> uuid.UUID | None:
    if update.sequence and update.sequence > 1:
        return provider_update_id(update.payment_id, update.sequence - 1)
    return None


@contextlib.contextmanager
def _context(update: ProviderPaymentUpdate | ProviderRefundUpdate) -> Iterator[None]:
    """Each update's log lines carry its ids; what it writes (outbox headers) its trace."""
    ids: dict[str, Any] = {
        "message_id": update.message_id,
        "correlation_id": update.correlation_id,
        "payment_id": update.payment_id,
    }
    with (
        bound_context(**ids),
        continued("apply provider update", traceparent_of(update.message_id), **ids),
    ):
        yield
