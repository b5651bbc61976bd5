"""What the handler needs from storage: one transaction over the inbox and the journal."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from ledger.domain.books import EntryKind, JournalEntry


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


OpenBooks = Callable[[], AbstractAsyncContextManager[Books]]
