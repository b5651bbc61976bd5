"""The list queries on the in-memory unit of work: scope, filters, keyset pages."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fluxpay_common.messages import ListPayments, ListRefunds, QueryReply
from payment_orchestrator.service_layer import handlers


async def _list(world: Any, **filters: Any) -> dict[str, Any]:
    reply = await handlers.handle_command(ListPayments(**world.scope(), **filters), world.deps)
    assert isinstance(reply, QueryReply) and reply.error is None, reply
    return dict(reply.data)


def _ids(page: dict[str, Any]) -> list[str]:
    return [p["id"] for p in page["data"]]


async def _created_in_order(world: Any, n: int, **fields: Any) -> list[str]:
    """Payments one second apart (the clock moves), oldest first."""
    ids = []
    for _ in range(n):
        world.store.now += timedelta(seconds=1)
        ids.append(str((await world.create(**fields)).id))
    return ids


async def test_payments_are_listed_newest_first_in_keyset_pages(make_world) -> None:
    world = make_world()
    ids = await _created_in_order(world, 5)
    first = await _list(world, limit=2)
    assert _ids(first) == ids[::-1][:2] and first["has_more"]
    second = await _list(world, limit=2, starting_after=_ids(first)[-1])
    assert _ids(second) == ids[::-1][2:4] and second["has_more"]
    last = await _list(world, limit=2, starting_after=_ids(second)[-1])
    assert _ids(last) == ids[:1] and not last["has_more"]


async def test_a_payment_created_between_pages_shifts_nothing(make_world) -> None:
    world = make_world()
    ids = await _created_in_order(world, 4)
    first = await _list(world, limit=2)
    newer = await _created_in_order(world, 1)
    second = await _list(world, limit=2, starting_after=_ids(first)[-1])
    assert _ids(second) == ids[::-1][2:4]
    assert newer[0] not in _ids(first) + _ids(second)


async def test_payments_with_the_same_creation_time_are_ordered_by_id(make_world) -> None:
    world = make_world()
    ids = [str((await world.create()).id) for _ in range(3)]  # the clock does not move
    walked: list[str] = []
    page = await _list(world, limit=1)
    while True:
        walked += _ids(page)
        if not page["has_more"]:
            break
        page = await _list(world, limit=1, starting_after=walked[-1])
    assert walked == sorted(ids, key=uuid.UUID, reverse=True)


async def test_filters_select_by_status_operator_provider_country_currency_reference(
    make_world,
) -> None:
    world = make_world()
    paid = await world.completed()
    coris = await world.create(operator="coris", reference="inv-2026-001")
    await world.create(reference="inv-2025-001")
    assert _ids(await _list(world, status="completed")) == [str(paid.id)]
    assert _ids(await _list(world, operator="coris")) == [str(coris.id)]
    assert _ids(await _list(world, provider="sandbox")) == [str(coris.id)]
    assert _ids(await _list(world, reference_prefix="inv-2026")) == [str(coris.id)]
    assert len(_ids(await _list(world, country="BJ", currency="XOF"))) == 3
    assert _ids(await _list(world, country="TG")) == []


async def test_the_created_range_includes_its_start_and_excludes_its_end(make_world) -> None:
    world = make_world()
    ids = await _created_in_order(world, 3)
    middle = world.store.payments[uuid.UUID(ids[1])].created_at
    page = await _list(world, created_gte=middle, created_lt=middle + timedelta(seconds=1))
    assert _ids(page) == [ids[1]]


async def test_another_merchants_or_environments_payments_are_never_listed(make_world) -> None:
    world = make_world()
    mine = await world.create()
    await world.create(merchant_id=uuid.uuid4())
    await world.create(environment="test")
    assert _ids(await _list(world)) == [str(mine.id)]


async def test_a_cursor_from_another_merchant_is_refused(make_world) -> None:
    world = make_world()
    theirs = await world.create(merchant_id=uuid.uuid4())
    reply = await handlers.handle_command(
        ListPayments(**world.scope(), starting_after=theirs.id), world.deps
    )
    assert reply.error is not None and reply.error.code == "invalid_starting_after"
    assert reply.error.param == "starting_after"


async def test_refunds_are_listed_per_payment_with_the_payment_reference(make_world) -> None:
    world = make_world()
    paid, other = await world.completed(), await world.completed()
    await world.settle_refund(await world.refund(paid, 1000))
    await world.settle_refund(await world.refund(other, 500))
    reply = await handlers.handle_command(
        ListRefunds(**world.scope(), payment=paid.reference), world.deps
    )
    assert isinstance(reply, QueryReply) and reply.error is None
    [refund] = reply.data["data"]
    assert (refund["payment_id"], refund["reference"], refund["amount"]) == (
        str(paid.id),
        paid.reference,
        1000,
    )
    everyone = await handlers.handle_command(ListRefunds(**world.scope()), world.deps)
    assert len(everyone.data["data"]) == 2


async def test_refunds_of_an_unknown_payment_are_not_found(make_world) -> None:
    world = make_world()
    reply = await handlers.handle_command(ListRefunds(**world.scope(), payment="nope"), world.deps)
    assert reply.error is not None and reply.error.code == "payment_not_found"
