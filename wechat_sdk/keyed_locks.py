"""One ``asyncio.Lock`` per key (a conversation), kept only while it is in use.

A gateway meets new conversations for as long as it runs; a lock made for each and never
dropped would grow without bound. Here a key's lock lives while someone holds it or waits
for it, and is dropped when the last of them is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["KeyedLocks"]


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class KeyedLocks:
    """Per-key locks.

    Example:
        ```python
        async with locks.hold(conversation_id):
            ...  # nobody else holds this conversation meanwhile
        ```
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold the key's lock for the block (waiting for it first, if it is held)."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]

    def __len__(self) -> int:
        """Keys whose lock is in use (held or waited for)."""
        return len(self._entries)
