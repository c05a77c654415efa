"""The outbox in the database: what a stop kept for the next start (schema version 2; its
``pairing_code`` column, version 4; its ``claim`` column, version 5; its ``notice``
column, version 6).

Every write is its own immediate transaction, durable when the call returns: it happens at
a stop and around the sends of kept messages, never on the hot path. Except for the
``"message"`` items, which come and go with every message (each journaled while it goes
through the inbound steps): they are written behind, with the dedupe marks, in the same
commits, and one deleted before its commit is never written at all.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from wechat_sdk.puppet import OutboundFile
from wechat_sdk.stores.base import CHANNEL, OutboxItem, OutboxState
from wechat_sdk.stores.sqlite.db import Database, storable

__all__ = ["SqliteOutboxStore"]


_OUTBOX_COLS: Final = (
    "seq, account_id, conversation_id, kind, state, created_at, dm, text, mention_ids, "
    "file_name, file_kind, file_mime, file_duration, file_data, file_path, file_url, turn, "
    "pairing_code, claim, notice"
)


def _outbox_item(row: Any) -> OutboxItem:
    file = None
    if row[9] is not None:
        file = OutboundFile(
            name=row[9],
            kind=row[10],
            mime=row[11],
            duration_s=row[12],
            data=bytes(row[13]) if row[13] is not None else None,
            path=Path(row[14]) if row[14] is not None else None,
            url=row[15],
        )
    return OutboxItem(
        id=row[0],
        account_id=row[1],
        conversation_id=row[2],
        kind=row[3],
        state=row[4],
        created_at=row[5],
        dm=bool(row[6]),
        text=row[7],
        mention_ids=tuple(json.loads(row[8])),
        file=file,
        turn=row[16],
        pairing_code=row[17],
        claim=row[18],
        notice=bool(row[19]),
    )


class _MessageBatch:
    """Queued writes of ``"message"`` items: rows to add (by id), then ids to delete."""

    __slots__ = ("add", "delete")

    def __init__(self) -> None:
        self.add: dict[int, OutboxItem] = {}
        self.delete: list[int] = []


class SqliteOutboxStore:
    """:class:`~wechat_sdk.stores.base.OutboxStore` over the shared database.

    Every write is a plain immediate transaction (committed, with an fsync, before the
    call returns), never part of the hot path's group commit; but ``"message"`` items
    added alone, and their deletes, are queued for the group commit (see the module).
    Such an item gets its id when added, before its row is written: only the gateway
    writes the outbox of its state directory, so the ids it gives are its own.
    """

    def __init__(self, db: Database, channel: str = CHANNEL) -> None:
        self._db = db
        self.channel = channel
        #: the last id given
        self._last_id = _sequence(db.conn)
        self._q = _MessageBatch()
        #: "message" items of this process whose rows were taken for a commit
        self._written: set[int] = set()
        db.register(self)

    def add(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        """See :meth:`OutboxStore.add` (one transaction; ``"message"`` items added alone
        are queued for the next commit of the dedupe marks)."""
        if len(items) == 1 and items[0].kind == "message":
            return [self._queue(items[0])]
        with self._db.write() as conn:
            return self._insert(conn, items)

    def replace(self, old: Sequence[OutboxItem], new: Sequence[OutboxItem]) -> list[OutboxItem]:
        """See :meth:`OutboxStore.replace` (one transaction; an old ``"message"`` item
        still queued is dropped from the queue)."""
        queued = [i.id for i in old if i.id in self._q.add]
        gone = [i.id for i in old if i.id not in self._q.add]
        with self._db.write() as conn:
            conn.executemany(
                "DELETE FROM outbox WHERE channel = ? AND seq = ?",
                [(self.channel, i) for i in gone],
            )
            added = self._insert(conn, new)
        for item_id in queued:  # (once the transaction is committed: else nothing changed)
            self._q.add.pop(item_id, None)
        self._written.difference_update(gone)
        return added

    def _insert(self, conn: sqlite3.Connection, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        added = []
        if items:
            self._last_id = max(self._last_id, _sequence(conn))
            for item in items:
                f = item.file
                # (the id given, not AUTOINCREMENT's: that may give again an id a queued
                # item had that was deleted before it was written)
                self._last_id += 1
                conn.execute(
                    f"INSERT INTO outbox (channel, {_OUTBOX_COLS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.channel,
                        self._last_id,
                        storable(item.account_id),
                        storable(item.conversation_id),
                        item.kind,
                        item.state,
                        item.created_at,
                        int(item.dm),
                        None if item.text is None else storable(item.text),
                        json.dumps(list(item.mention_ids)),
                        storable(f.name) if f else None,
                        f.kind if f else None,
                        storable(f.mime) if f and f.mime is not None else None,
                        f.duration_s if f else None,
                        f.data if f else None,
                        storable(str(f.path)) if f and f.path is not None else None,
                        storable(f.url) if f and f.url is not None else None,
                        None if item.turn is None else storable(item.turn),
                        item.pairing_code,
                        item.claim,
                        int(item.notice),
                    ),
                )
                added.append(dataclasses.replace(item, id=self._last_id))
        return added

    def _queue(self, item: OutboxItem) -> OutboxItem:
        self._last_id += 1
        added = OutboxItem(  # (not dataclasses.replace: this is every message's, and twice as fast)
            item.account_id,
            item.conversation_id,
            item.kind,
            item.created_at,
            turn=item.turn,
            dm=item.dm,
            id=self._last_id,
            claim=item.claim,
        )
        self._q.add[added.id] = added
        self._db.queued()
        return added

    def items(self, account_id: str) -> list[OutboxItem]:
        """See :meth:`OutboxStore.items` (queued writes are committed first)."""
        self._db.flush()
        rows = self._db.read(
            f"SELECT {_OUTBOX_COLS} FROM outbox WHERE channel = ? AND account_id = ? ORDER BY seq",
            (self.channel, account_id),
        )
        return [_outbox_item(r) for r in rows]

    def set_state(self, item_id: int, state: OutboxState) -> None:
        """See :meth:`OutboxStore.set_state`."""
        with self._db.write() as conn:
            conn.execute(
                "UPDATE outbox SET state = ? WHERE channel = ? AND seq = ?",
                (state, self.channel, item_id),
            )

    def delete(self, item_id: int) -> bool:
        """See :meth:`OutboxStore.delete` (a ``"message"`` item of this process: queued,
        or never written if its add was still queued)."""
        if self._q.add.pop(item_id, None) is not None:
            return True
        if item_id in self._written:
            self._written.discard(item_id)
            self._q.delete.append(item_id)
            # counted with the dedupe marks: a reply waits for it (Store.marks_durable)
            self._db.marks_queued += 1
            self._db.queued()
            return True
        with self._db.write() as conn:
            cur = conn.execute(
                "DELETE FROM outbox WHERE channel = ? AND seq = ?", (self.channel, item_id)
            )
            return cur.rowcount > 0

    # ------------------------------------------------------------ write-behind

    def take(self) -> _MessageBatch | None:
        q = self._q
        if not (q.add or q.delete):
            return None
        self._q = _MessageBatch()
        self._written.update(q.add)
        return q

    def write(self, conn: sqlite3.Connection, batch: _MessageBatch) -> None:
        ch = self.channel
        if batch.add:
            conn.executemany(
                "INSERT INTO outbox (seq, channel, account_id, conversation_id, kind, state, "
                "created_at, dm, mention_ids, turn, claim) VALUES (?, ?, ?, ?, ?, 'pending', "
                "?, ?, '[]', ?, ?)",
                [
                    (
                        i.id,
                        ch,
                        storable(i.account_id),
                        storable(i.conversation_id),
                        i.kind,
                        i.created_at,
                        int(i.dm),
                        storable(i.turn or ""),
                        i.claim,
                    )
                    for i in batch.add.values()
                ],
            )
        if batch.delete:
            conn.executemany(
                "DELETE FROM outbox WHERE channel = ? AND seq = ?", [(ch, i) for i in batch.delete]
            )


def _sequence(conn: sqlite3.Connection) -> int:
    """The largest id the outbox ever had (AUTOINCREMENT keeps it, as it keeps ids given)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    return int(row[0]) if row else 0
