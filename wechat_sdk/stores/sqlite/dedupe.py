"""The dedupe window in the database: kept in memory per account, written behind.

Each account's marks are read on its first use, oldest first; then checks are answered
from memory and new marks are queued for the next commit. Every new mark moves the
database's mark position on (see :meth:`~wechat_sdk.stores.base.Store.mark_position`).
A mark is written with its claim (schema version 5; "" in a mark written before).
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict

from wechat_sdk.stores.base import CHANNEL, DEFAULT_DEDUPE_MAX_ENTRIES
from wechat_sdk.stores.sqlite.db import Database, storable

__all__ = ["SqliteDedupeStore"]


class _DedupeBatch:
    """Queued dedupe writes: marks to delete, then marks to (re)write, in order."""

    __slots__ = ("add", "delete")

    def __init__(self) -> None:
        self.add: dict[tuple[str, str], tuple[float, str]] = {}
        self.delete: dict[tuple[str, str], None] = {}


class SqliteDedupeStore:
    """:class:`~wechat_sdk.stores.base.DedupeStore` over the shared database.

    Each account's marks are read on its first use, oldest first; then checks are
    answered from memory and new marks are queued for the next commit (see the module).
    """

    def __init__(
        self, db: Database, max_entries: int = DEFAULT_DEDUPE_MAX_ENTRIES, channel: str = CHANNEL
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._db = db
        self.max_entries = max_entries
        self.channel = channel
        #: each account's marks: message id to the time it was seen and its claim
        self._seen: dict[str, OrderedDict[str, tuple[float, str]]] = {}
        self._q = _DedupeBatch()
        db.register(self)

    def _account(self, account_id: str) -> OrderedDict[str, tuple[float, str]]:
        seen = self._seen.get(account_id)
        if seen is None:
            rows = self._db.read(
                "SELECT message_id, seen_at, claim FROM dedupe WHERE channel = ? "
                "AND account_id = ? ORDER BY seq",
                (self.channel, account_id),
            )
            seen = self._seen[account_id] = OrderedDict(
                (m, (at, claim or "")) for m, at, claim in rows
            )
        return seen

    def check_and_add(
        self, account_id: str, message_id: str, now: float, ttl: float, claim: str = ""
    ) -> bool:
        """See :meth:`DedupeStore.check_and_add`."""
        message_id = storable(message_id)
        seen = self._account(account_id)
        mark = seen.get(message_id)
        if mark is not None and now - mark[0] < ttl:
            return not (claim and mark[1] == claim)
        if mark is not None:
            del seen[message_id]
        # oldest first: drop the expired head, then enforce the bound
        while seen:
            first = next(iter(seen))
            if now - seen[first][0] < ttl:
                break
            del seen[first]
            self._forget(account_id, first)
        seen[message_id] = mark = (now, claim)
        k = (account_id, message_id)
        q = self._q
        q.delete.pop(k, None)
        q.add.pop(k, None)  # re-added: it goes to the end
        q.add[k] = mark
        while len(seen) > self.max_entries:
            self._forget(account_id, seen.popitem(last=False)[0])
        self._db.marks_queued += 1
        self._db.queued()
        return False

    def _forget(self, account_id: str, message_id: str) -> None:
        k = (account_id, message_id)
        self._q.add.pop(k, None)
        self._q.delete[k] = None  # (it may be in the file from an earlier commit)

    # ------------------------------------------------------------ write-behind

    def take(self) -> _DedupeBatch | None:
        q = self._q
        if not (q.add or q.delete):
            return None
        self._q = _DedupeBatch()
        return q

    def write(self, conn: sqlite3.Connection, batch: _DedupeBatch) -> None:
        ch = self.channel
        if batch.delete:
            conn.executemany(
                "DELETE FROM dedupe WHERE channel = ? AND account_id = ? AND message_id = ?",
                [(ch, a, m) for a, m in batch.delete],
            )
        if batch.add:
            # REPLACE: a mark written again gets a new seq (the order of the bound)
            conn.executemany(
                "INSERT OR REPLACE INTO dedupe (channel, account_id, message_id, seen_at, "
                "claim) VALUES (?, ?, ?, ?, ?)",
                [(ch, a, m, t, c) for (a, m), (t, c) in batch.add.items()],
            )
