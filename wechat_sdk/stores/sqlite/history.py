"""Conversation history in the database, with a bounded cache of recent conversations.

The entries of the ``cache_conversations`` conversations used most recently (read or
appended to, in any account) are kept in memory; any other conversation is read from
the file when it is used, so memory stays bounded however many conversations the file
tracks. Each account's list of conversations (their keys, least recently appended
first: the order that forgets the oldest past ``max_conversations``) is read on the
account's first use and kept. Writes are queued for the next commit (see
:class:`~wechat_sdk.stores.sqlite.db.Database`): a message costs no SQL statement of its
own unless its conversation has to be read.
"""

from __future__ import annotations

import dataclasses
import itertools
import sqlite3
from collections import OrderedDict
from collections.abc import Iterable
from typing import Final

from wechat_sdk.agent import HistoryEntry
from wechat_sdk.stores.base import CHANNEL, DEFAULT_MAX_CONVERSATIONS
from wechat_sdk.stores.sqlite.db import Database, storable

__all__ = ["DEFAULT_HISTORY_CACHE_CONVERSATIONS", "SqliteHistoryStore"]

#: Conversations whose entries are kept in memory by default (every account's together):
#: ``channels.wechat.historyCacheConversations``.
DEFAULT_HISTORY_CACHE_CONVERSATIONS: Final = 1000

_NUMBER: Final = (int, float)


def _check_entry(entry: HistoryEntry) -> HistoryEntry:
    """The entry as it will be stored; refused at once when a column could not be
    stored (it is written later)."""
    fields = (entry.role, entry.sender_id, entry.sender_name, entry.text, entry.message_id)
    try:
        joined = "".join(fields)  # (refuses anything but str: the type check, in C)
    except TypeError:
        joined = None
    if joined is None or not isinstance(entry.timestamp, _NUMBER):
        raise TypeError(
            f"history entry {entry!r}: role, sender_id, sender_name, text and message_id "
            "must be str and timestamp a number"
        )
    if joined.isascii():  # the common case, one C call
        return entry
    role, sender_id, sender_name, text, message_id = map(storable, fields)
    if (role, sender_id, sender_name, text, message_id) == fields:
        return entry
    return dataclasses.replace(
        entry,
        role=role,  # type: ignore[arg-type]
        sender_id=sender_id,
        sender_name=sender_name,
        text=text,
        message_id=message_id,
    )


class _HistoryBatch:
    """Queued history writes, per (account, conversation), applied in this order:
    forgotten conversations (all their rows), rewritten ones (their entries' rows: the
    new entries are then all they hold), new entries, trims (to the newest n), last uses."""

    __slots__ = ("forget", "insert", "rewrite", "trim", "used")

    def __init__(self) -> None:
        self.forget: dict[tuple[str, str], None] = {}
        self.rewrite: dict[tuple[str, str], None] = {}
        self.insert: dict[tuple[str, str], list[HistoryEntry]] = {}
        self.trim: dict[tuple[str, str], int] = {}
        self.used: dict[tuple[str, str], int] = {}


class SqliteHistoryStore:
    """:class:`~wechat_sdk.stores.base.HistoryStore` (and
    :class:`~wechat_sdk.stores.base.RemovesHistory`) over the shared database (see the
    module): at most ``cache_conversations`` conversations' entries in memory."""

    def __init__(
        self,
        db: Database,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        channel: str = CHANNEL,
        cache_conversations: int = DEFAULT_HISTORY_CACHE_CONVERSATIONS,
    ) -> None:
        if max_conversations < 1:
            raise ValueError("max_conversations must be at least 1")
        if cache_conversations < 1:
            raise ValueError("cache_conversations must be at least 1")
        self._db = db
        self.max_conversations = max_conversations
        self.cache_conversations = cache_conversations
        self.channel = channel
        #: per account, every conversation tracked, least recently appended first
        self._keys: dict[str, OrderedDict[str, None]] = {}
        #: the entries of the conversations used most recently, least recently first
        self._cache: OrderedDict[tuple[str, str], list[HistoryEntry]] = OrderedDict()
        #: the newest ``last_used`` written (the order of conversations), read once
        self._tick: int | None = None
        self._q = _HistoryBatch()
        #: conversations made since the last batch was taken: none of their rows is in
        #: the file, so forgetting one costs no DELETE (a burst over the bound makes and
        #: forgets many between two commits)
        self._new: set[tuple[str, str]] = set()
        db.register(self)

    def _account(self, account_id: str) -> OrderedDict[str, None]:
        keys = self._keys.get(account_id)
        if keys is None:
            rows = self._db.read(
                "SELECT conv_key FROM history_conversations WHERE channel = ? "
                "AND account_id = ? ORDER BY last_used",
                (self.channel, account_id),
            )
            keys = self._keys[account_id] = OrderedDict.fromkeys(key for (key,) in rows)
        return keys

    def _entries(self, account_id: str, key: str) -> list[HistoryEntry] | None:
        """The conversation's entries, from the cache or else the file (and then
        cached); None if it is not tracked."""
        ck = (account_id, key)
        entries = self._cache.get(ck)
        if entries is not None:
            self._cache.move_to_end(ck)
            return entries
        if key not in self._account(account_id):
            return None
        if ck in self._q.used or ck in self._q.rewrite or self._db.unwritten:
            self._db.flush()  # (its writes are still queued: the file first gets them)
        rows = self._db.read(
            "SELECT role, sender_id, sender_name, text, timestamp, message_id "
            "FROM history_entries WHERE channel = ? AND account_id = ? AND conv_key = ? "
            "ORDER BY seq",
            (self.channel, account_id, key),
        )
        # positional, in the declared field order: a third cheaper than by keyword
        entries = self._cache[ck] = list(itertools.starmap(HistoryEntry, rows))
        self._shrink()
        return entries

    def _shrink(self) -> None:
        """Drop the least recently used entries past the bound (they are in the file, or
        queued for it: a conversation read again after a drop is read from there)."""
        while len(self._cache) > self.cache_conversations:
            self._cache.popitem(last=False)

    def append(self, account_id: str, key: str, entry: HistoryEntry, limit: int) -> None:
        """See :meth:`HistoryStore.append`."""
        if limit <= 0:
            self.clear(account_id, key)
            return
        entry = _check_entry(entry)
        if self._tick is None:
            self._tick = int(
                self._db.read("SELECT coalesce(max(last_used), 0) FROM history_conversations")[0][0]
            )
        keys = self._account(account_id)
        ck = (account_id, key)
        entries = self._entries(account_id, key)
        if entries is None:  # a new conversation
            entries = self._cache[ck] = []
            keys[key] = None
            self._new.add(ck)
        else:
            keys.move_to_end(key)  # the most recently appended to
        entries.append(entry)
        extra = len(entries) - limit
        if extra > 0:
            del entries[:extra]
        self._tick += 1
        q = self._q
        queued = q.insert.get(ck)
        if queued is None:
            q.insert[ck] = [entry]
        else:
            queued.append(entry)
            if len(queued) > len(entries):
                del queued[: len(queued) - len(entries)]  # never written at all
        if extra > 0 or ck in q.trim:  # (a trim queued earlier keeps what memory holds now)
            q.trim[ck] = len(entries)
        q.used[ck] = self._tick
        while len(keys) > self.max_conversations:
            self._forget(account_id, keys.popitem(last=False)[0])
        self._shrink()
        self._db.queued()

    def get(self, account_id: str, key: str) -> list[HistoryEntry]:
        """See :meth:`HistoryStore.get`."""
        entries = self._entries(account_id, key)
        return list(entries) if entries is not None else []

    def clear(self, account_id: str, key: str) -> None:
        """See :meth:`HistoryStore.clear`."""
        keys = self._account(account_id)
        if key in keys:
            del keys[key]
            self._forget(account_id, key)
            self._db.queued()

    def remove(self, account_id: str, key: str, entries: Iterable[HistoryEntry]) -> None:
        """See :meth:`RemovesHistory.remove`: what memory holds changes at once; the
        conversation's rows are rewritten to it in the next commit (one transaction)."""
        gone = set(entries)  # (read whole before anything changes)
        if not gone:
            return
        held = self._entries(account_id, key)  # (may read the file: before any change)
        if held is None:
            return
        left = [e for e in held if e not in gone]
        if not left:
            self.clear(account_id, key)
            return
        if len(left) == len(held):
            return
        held[:] = left  # (the cache's list: its place in the order of use stays)
        ck = (account_id, key)
        q = self._q
        if ck not in self._new:  # rows of it may be in the file (or on their way there)
            q.rewrite[ck] = None
        q.insert[ck] = list(left)
        q.trim.pop(ck, None)  # (the rewrite holds no more than memory)
        self._db.queued()

    def _forget(self, account_id: str, key: str) -> None:
        ck = (account_id, key)
        self._cache.pop(ck, None)
        q = self._q
        q.insert.pop(ck, None)
        q.rewrite.pop(ck, None)
        q.trim.pop(ck, None)
        q.used.pop(ck, None)
        if ck in self._new:
            self._new.discard(ck)  # (a forget queued before it was made stays queued)
        else:
            q.forget[ck] = None

    # ------------------------------------------------------------ write-behind

    def take(self) -> _HistoryBatch | None:
        q = self._q
        if not (q.forget or q.rewrite or q.insert or q.used):
            return None
        self._q = _HistoryBatch()
        self._new.clear()  # on their way to the file
        return q

    def write(self, conn: sqlite3.Connection, batch: _HistoryBatch) -> None:
        ch = self.channel
        if batch.forget:
            forget = [(ch, a, k) for a, k in batch.forget]
            conn.executemany(
                "DELETE FROM history_entries WHERE channel = ? AND account_id = ? AND conv_key = ?",
                forget,
            )
            conn.executemany(
                "DELETE FROM history_conversations WHERE channel = ? AND account_id = ? "
                "AND conv_key = ?",
                forget,
            )
        if batch.rewrite:
            conn.executemany(
                "DELETE FROM history_entries WHERE channel = ? AND account_id = ? AND conv_key = ?",
                [(ch, a, k) for a, k in batch.rewrite],
            )
        if batch.insert:
            conn.executemany(
                "INSERT INTO history_entries (channel, account_id, conv_key, role, sender_id, "
                "sender_name, text, timestamp, message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        ch,
                        a,
                        k,
                        e.role,
                        e.sender_id,
                        e.sender_name,
                        e.text,
                        e.timestamp,
                        e.message_id,
                    )
                    for (a, k), entries in batch.insert.items()
                    for e in entries
                ],
            )
        if batch.trim:
            # keep the newest n rows (n: what memory holds, at most the limit)
            conn.executemany(
                "DELETE FROM history_entries WHERE channel = ?1 AND account_id = ?2 "
                "AND conv_key = ?3 AND seq <= (SELECT seq FROM history_entries "
                "WHERE channel = ?1 AND account_id = ?2 AND conv_key = ?3 "
                "ORDER BY seq DESC LIMIT 1 OFFSET ?4)",
                [(ch, a, k, n) for (a, k), n in batch.trim.items()],
            )
        if batch.used:
            conn.executemany(
                "INSERT INTO history_conversations (channel, account_id, conv_key, last_used) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (channel, account_id, conv_key) "
                "DO UPDATE SET last_used = excluded.last_used",
                [(ch, a, k, t) for (a, k), t in batch.used.items()],
            )
