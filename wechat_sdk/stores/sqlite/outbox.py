"""The outbox in the database: what a stop kept for the next start (schema version 2).

Every write is its own immediate transaction, durable when the call returns: it happens at
a stop and around the sends of kept messages, never on the hot path.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from wechat_sdk.puppet import OutboundFile
from wechat_sdk.stores.base import CHANNEL, OutboxItem, OutboxState
from wechat_sdk.stores.sqlite.db import Database

__all__ = ["SqliteOutboxStore"]


_OUTBOX_COLS: Final = (
    "seq, account_id, conversation_id, kind, state, created_at, dm, text, mention_ids, "
    "file_name, file_kind, file_mime, file_duration, file_data, file_path, file_url, turn"
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
    )


class SqliteOutboxStore:
    """:class:`~wechat_sdk.stores.base.OutboxStore` over the shared database.

    Every write is a plain immediate transaction (committed, with an fsync, before the
    call returns), never part of the hot path's group commit.
    """

    def __init__(self, db: Database, channel: str = CHANNEL) -> None:
        self._db = db
        self.channel = channel

    def add(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        """See :meth:`OutboxStore.add` (one transaction)."""
        added = []
        with self._db.write() as conn:
            for item in items:
                f = item.file
                state: OutboxState = "waiting" if item.state == "waiting" else "pending"
                cur = conn.execute(
                    f"INSERT INTO outbox (channel, {_OUTBOX_COLS.removeprefix('seq, ')}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.channel,
                        item.account_id,
                        item.conversation_id,
                        item.kind,
                        state,
                        item.created_at,
                        int(item.dm),
                        item.text,
                        json.dumps(list(item.mention_ids)),
                        f.name if f else None,
                        f.kind if f else None,
                        f.mime if f else None,
                        f.duration_s if f else None,
                        f.data if f else None,
                        str(f.path) if f and f.path is not None else None,
                        f.url if f else None,
                        item.turn,
                    ),
                )
                assert cur.lastrowid is not None
                added.append(dataclasses.replace(item, id=cur.lastrowid, state=state))
        return added

    def items(self, account_id: str) -> list[OutboxItem]:
        """See :meth:`OutboxStore.items`."""
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
        """See :meth:`OutboxStore.delete`."""
        with self._db.write() as conn:
            cur = conn.execute(
                "DELETE FROM outbox WHERE channel = ? AND seq = ?", (self.channel, item_id)
            )
            return cur.rowcount > 0
