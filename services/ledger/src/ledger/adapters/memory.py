"""In-memory books with the database's invariants, for the pure tests of the handler.

Enforced as the Postgres schema does: one inbox row per message, one entry per event, per
payment and per refund, balanced entries, nothing updated or deleted; a transaction's
writes appear only when it ends without error. It also keeps a running balance per account,
as a cache would, so tests can check it against the sum of postings.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from ledger.domain.accounts import Account, AccountKind
from ledger.domain.books import EntryKind, JournalEntry, UnbalancedEntry, check_balanced
from ledger.domain.holds import HoldRequest, HoldStatus
from ledger.service_layer.ports import Booking, Recorded


class IntegrityError(Exception):
    """What a unique constraint violation is in the database."""


@dataclass
class MemoryStore:
    inbox: set[uuid.UUID] = field(default_factory=set)
    entries: list[JournalEntry] = field(default_factory=list)
    balances: dict[Account, int] = field(default_factory=dict)
    holds: dict[uuid.UUID, tuple[HoldRequest, HoldStatus]] = field(default_factory=dict)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryBooks]:
        """An `OpenBooks`: an error inside the block discards every staged write."""
        books = MemoryBooks(self)
        yield books
        self._commit(books)

    def _commit(self, books: MemoryBooks) -> None:
        """What the deferred constraint trigger checks, then the writes."""
        for entry in books.staged_entries:
            check_balanced(entry.postings, entry.environment, entry.currency)
            for posting in entry.postings:
                owner = posting.account.merchant_id
                if owner is not None and owner != entry.merchant_id:
                    raise UnbalancedEntry("an entry touches only its own merchant's balance")
        self.inbox |= books.staged_inbox
        self.holds |= books.staged_holds
        for entry in books.staged_entries:
            self.entries.append(entry)
            for posting in entry.postings:
                balance = self.balances.get(posting.account, 0)
                self.balances[posting.account] = balance + posting.amount_minor


@dataclass
class MemoryBooks:
    store: MemoryStore
    staged_inbox: set[uuid.UUID] = field(default_factory=set)
    staged_entries: list[JournalEntry] = field(default_factory=list)
    staged_holds: dict[uuid.UUID, tuple[HoldRequest, HoldStatus]] = field(default_factory=dict)

    async def claim(self, message_id: uuid.UUID, consumer: str) -> bool:
        if message_id in self.store.inbox or message_id in self.staged_inbox:
            return False
        self.staged_inbox.add(message_id)
        return True

    async def is_booked(self, key: tuple[EntryKind, uuid.UUID]) -> bool:
        return any(e.business_key == key for e in self._visible())

    async def add(self, entry: JournalEntry) -> None:
        if any(e.event_id == entry.event_id or e.id == entry.id for e in self._visible()):
            raise IntegrityError(f"event {entry.event_id} is already booked")
        if await self.is_booked(entry.business_key):
            raise IntegrityError(f"{entry.business_key} is already booked")
        self.staged_entries.append(entry)

    async def record(self, bookings: Sequence[Booking], consumer: str) -> list[Recorded]:
        return [await self._record_one(b, consumer) for b in bookings]

    async def _record_one(self, booking: Booking, consumer: str) -> Recorded:
        if not await self.claim(booking.message_id, consumer):
            return Recorded.HANDLED_BEFORE
        if booking.hold is not None:
            await self.settle(*booking.hold)
        if booking.entry is None:
            return Recorded.NOTHING_TO_BOOK
        if await self.is_booked(booking.entry.business_key):
            return Recorded.ALREADY_BOOKED
        await self.add(booking.entry)
        return Recorded.BOOKED

    # Holds: the store's transactions run one at a time, which is the advisory lock's effect.
    async def lock_balance(self, key: tuple[uuid.UUID, str, str]) -> None:
        return None

    async def find(self, refund_id: uuid.UUID) -> HoldStatus | None:
        found = self._holds().get(refund_id)
        return None if found is None else found[1]

    async def booked_and_held(self, key: tuple[uuid.UUID, str, str]) -> tuple[int, int]:
        booked = -sum(
            amount
            for account, amount in self.store.balances.items()
            if account.kind is AccountKind.MERCHANT_AVAILABLE
            and (account.merchant_id, account.environment, account.currency) == key
        )
        held = sum(
            request.amount_minor
            for request, status in self._holds().values()
            if status is HoldStatus.HELD and request.balance_key == key
        )
        return booked, held

    async def place(self, request: HoldRequest) -> None:
        if request.refund_id in self._holds():
            raise IntegrityError(f"refund {request.refund_id} is already held")
        self.staged_holds[request.refund_id] = (request, HoldStatus.HELD)

    async def settle(self, refund_id: uuid.UUID, outcome: HoldStatus) -> None:
        found = self._holds().get(refund_id)
        if found is not None and found[1] is HoldStatus.HELD:
            self.staged_holds[refund_id] = (found[0], outcome)

    def _holds(self) -> dict[uuid.UUID, tuple[HoldRequest, HoldStatus]]:
        return self.store.holds | self.staged_holds

    def _visible(self) -> list[JournalEntry]:
        return [*self.store.entries, *self.staged_entries]
