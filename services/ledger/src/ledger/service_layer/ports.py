"""What the handler needs from storage: one transaction over the inbox and the journal."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from ledger.domain.books import JournalEntry
from ledger.domain.holds import HoldRequest, HoldStatus
from ledger.domain.reconciliation import DayFilter, Movement, MovementKey


class Recorded(Enum):
    """What recording an event did."""

    HANDLED_BEFORE = "handled_before"  # a redelivery: nothing done
    NOTHING_TO_BOOK = "nothing_to_book"  # claimed (and its refund's hold ended, if any)
    ALREADY_BOOKED = "already_booked"  # claimed; another event booked the payment or refund
    BOOKED = "booked"


@dataclass(frozen=True)
class Booking:
    """One event to record: its message id, the entry it books (None: nothing to book) and
    the refund hold it ends (refund id, outcome), if any."""

    message_id: uuid.UUID
    entry: JournalEntry | None
    hold: tuple[uuid.UUID, HoldStatus] | None


class Books(Protocol):
    """The journal; what `record` writes commits together or not at all."""

    async def record(self, bookings: Sequence[Booking], consumer: str) -> list[Recorded]:
        """For each booking, in order (message ids distinct): claim the message and, if it is
        new, end the refund's hold (if still held) and write the entry with its postings,
        unless its payment or refund already has one (creating the accounts on first use).
        All at once; what each booking did, in the same order."""
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
