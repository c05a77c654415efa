"""One ``asyncio.Lock`` per key (a conversation), kept only while it is in use.

A gateway meets new conversations for as long as it runs; a lock made for each and never
dropped would grow without bound. Here a key's lock lives while someone holds it or waits
for it, and is dropped when the last of them is done.
"""

from __future__ import annotations

import asyncio

__all__ = ["KeyedLocks"]


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class _Hold:
    """One ``async with locks.hold(key)``: a class, not a generator-based context
    manager, as it is taken twice for every message answered."""

    __slots__ = ("_entries", "_entry", "_key")

    def __init__(self, entries: dict[str, _Entry], key: str) -> None:
        self._entries = entries
        self._key = key

    async def __aenter__(self) -> None:
        entry = self._entries.get(self._key)
        if entry is None:
            entry = self._entries[self._key] = _Entry()
        self._entry = entry
        entry.users += 1
        try:
            await entry.lock.acquire()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._entry.lock.release()
        self._leave()

    def _leave(self) -> None:
        entry = self._entry
        entry.users -= 1
        if entry.users == 0:
            del self._entries[self._key]


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

    def hold(self, key: str) -> _Hold:
        """Hold the key's lock for an ``async with`` block (waiting for it first, if it is
        held)."""
        return _Hold(self._entries, key)

    def __len__(self) -> int:
        """Keys whose lock is in use (held or waited for)."""
        return len(self._entries)
