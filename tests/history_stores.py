"""A history store of the shape users wrote before ``remove()`` existed, for the tests of
how the gateway serves one (read, clear, append back)."""

from __future__ import annotations

from wechat_sdk.agent import HistoryEntry
from wechat_sdk.stores import MemoryHistoryStore


class StoreOfOld:
    """A history store written before remove(): append, get and clear only; its appends
    fail while ``down`` (Redis out of reach for a moment)."""

    def __init__(self) -> None:
        self.inner = MemoryHistoryStore()
        self.down = False

    def append(self, account_id: str, key: str, entry: HistoryEntry, limit: int) -> None:
        if self.down:
            raise ConnectionError("Connection refused")
        self.inner.append(account_id, key, entry, limit)

    def get(self, account_id: str, key: str) -> list[HistoryEntry]:
        return self.inner.get(account_id, key)

    def clear(self, account_id: str, key: str) -> None:
        self.inner.clear(account_id, key)
