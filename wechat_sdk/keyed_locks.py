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


class KeyedLocks:
    """Per-key locks. Use as::

    lock = locks.take(key)
    try:
        async with lock:
            ...
    finally:
        locks.done(key)
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def take(self, key: str) -> asyncio.Lock:
        """The key's lock, counted as used until :meth:`done` (call it exactly once)."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        return entry.lock

    def done(self, key: str) -> None:
        """One user of the key is done; the last one drops the lock."""
        entry = self._entries[key]
        entry.users -= 1
        if entry.users == 0:
            del self._entries[key]

    def __len__(self) -> int:
        """Keys whose lock is in use (held or waited for)."""
        return len(self._entries)
