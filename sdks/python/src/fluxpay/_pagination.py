"""Cursor pagination (`limit`, `starting_after`, `has_more`): iterate every object of a
list, page after page, fetched only as the iteration reaches them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from fluxpay._base import Call
from fluxpay.models import ListObject

T = TypeVar("T", bound=BaseModel)


def next_page_call(call: Call, page: ListObject[Any]) -> Call | None:
    """The call for the page after `page`, or None when it was the last."""
    if not page.has_more or not page.data:
        return None
    return call.with_params(starting_after=str(page.data[-1].id))


class Pager(Generic[T]):
    """`for payment in client.payments.list(status="completed"): ...` walks every page."""

    def __init__(self, fetch: Callable[[Call], ListObject[T]], call: Call) -> None:
        self._fetch = fetch
        self._call = call

    def first_page(self) -> ListObject[T]:
        return self._fetch(self._call)

    def pages(self) -> Iterator[ListObject[T]]:
        call: Call | None = self._call
        while call is not None:
            page = self._fetch(call)
            yield page
            call = next_page_call(call, page)

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.data


class AsyncPager(Generic[T]):
    """`async for payment in client.payments.list(status="completed"): ...`."""

    def __init__(self, fetch: Callable[[Call], Awaitable[ListObject[T]]], call: Call) -> None:
        self._fetch = fetch
        self._call = call

    async def first_page(self) -> ListObject[T]:
        return await self._fetch(self._call)

    async def pages(self) -> AsyncIterator[ListObject[T]]:
        call: Call | None = self._call
        while call is not None:
            page = await self._fetch(call)
            yield page
            call = next_page_call(call, page)

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.data:
                yield item
