"""What the handler needs from storage: one transaction over the inbox and the journal."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from ledger.domain.books import EntryKind, JournalEntry
from ledger.domain.holds import HoldRequest, HoldStatus
from ledger.domain.reconciliation import DayFilter, Movement, MovementKey


class Books(Protocol):
    """The journal inside one transaction; leaving the context commits, an error rolls back."""

    async def claim(self, message_id: uuid.UUID, consumer: str) -> bool:
        """Record the message as handled; False if it already was."""
        ...

    async def is_booked(self, key: tuple[EntryKind, uuid.UUID]) -> bool:
        """Whether the payment or refund already has its entry (under any event id)."""
        ...

    async def add(self, entry: JournalEntry) -> None:
        """Write the entry and its postings, creating the accounts on first use."""
        ...

    async def settle_hold(self, refund_id: uuid.UUID, outcome: HoldStatus) -> None:
        """End the refund's hold, if it has one still held (consumed or released)."""
        ...


class Holds(Protocol):
    """Refund holds inside one transaction, serialized per merchant balance."""

    async def lock_balance(self, key: tuple[uuid.UUID, str, str]) -> None:
        """Serialize with every other hold on this balance until the transaction ends."""
        ...

    async def find(self, refund_id: uuid.UUID) -> HoldStatus | None: ...

    async def booked_and_held(self, key: tuple[uuid.UUID, str, str]) -> tuple[int, int]:
        """The balance's booked amount and the sum of its active holds, in minor units."""
        ...

    async def place(self, request: HoldRequest) -> None: ...

    async def settle(self, refund_id: uuid.UUID, outcome: HoldStatus) -> None:
        """End the hold if it is still held; an ended hold stays as it is."""
        ...


OpenBooks = Callable[[], AbstractAsyncContextManager[Books]]
OpenHolds = Callable[[], AbstractAsyncContextManager[Holds]]


class OrchestratorDay(Protocol):
    """The orchestrator's side of a reconciliation, asked through its door."""

    async def expected_movements(self, day: DayFilter) -> list[Movement]:
        """The payments it collected and the refunds it paid out in the day's window."""
        ...

    async def settled(
        self, keys: Iterable[MovementKey]
    ) -> dict[MovementKey, tuple[Movement, datetime]]:
        """These payments and refunds as it settled them (if it did), and when."""
        ...
