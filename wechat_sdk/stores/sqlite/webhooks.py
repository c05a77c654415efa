"""The webhook queue and the HTTP API's idempotency keys in the database (schema version 3).

Every write is its own immediate transaction, durable when the call returns: an event is
queued once, when it happens, and a key once per API request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Final

from wechat_sdk.stores.base import CHANNEL, IdempotentRequest, WebhookDelivery
from wechat_sdk.stores.sqlite.db import Database, storable

__all__ = ["SqliteIdempotencyStore", "SqliteWebhookQueue"]

_COLS: Final = (
    "seq, endpoint, message_id, event_type, body, created_at, next_attempt_at, attempts, last_error"
)


def _delivery(row: Any) -> WebhookDelivery:
    return WebhookDelivery(
        id=row[0],
        endpoint=row[1],
        message_id=row[2],
        event_type=row[3],
        body=row[4],
        created_at=row[5],
        next_attempt_at=row[6],
        attempts=row[7],
        last_error=row[8],
    )


class SqliteWebhookQueue:
    """:class:`~wechat_sdk.stores.base.WebhookQueue` over the shared database."""

    def __init__(self, db: Database, channel: str = CHANNEL) -> None:
        self._db = db
        self.channel = channel

    def add(self, deliveries: Sequence[WebhookDelivery]) -> list[WebhookDelivery]:
        """See :meth:`WebhookQueue.add` (one transaction)."""
        added = []
        with self._db.write() as conn:
            for d in deliveries:
                cur = conn.execute(
                    f"INSERT INTO webhook_queue (channel, {_COLS.removeprefix('seq, ')}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.channel,
                        d.endpoint,
                        d.message_id,
                        d.event_type,
                        storable(d.body),
                        d.created_at,
                        d.next_attempt_at,
                        d.attempts,
                        d.last_error,
                    ),
                )
                assert cur.lastrowid is not None
                added.append(dataclasses.replace(d, id=cur.lastrowid))
        return added

    def due(self, endpoint: str, now: float, limit: int = 100) -> list[WebhookDelivery]:
        """See :meth:`WebhookQueue.due`."""
        rows = self._db.read(
            f"SELECT {_COLS} FROM webhook_queue WHERE channel = ? AND endpoint = ? "
            "AND next_attempt_at <= ? ORDER BY next_attempt_at, seq LIMIT ?",
            (self.channel, endpoint, now, limit),
        )
        return [_delivery(r) for r in rows]

    def claim_due(
        self, endpoint: str, now: float, *, hold_s: float, limit: int = 1
    ) -> list[WebhookDelivery]:
        """See :meth:`WebhookQueue.claim_due`: the file is one gateway's (its state
        directory's), so what is due is its own (a trivial claim; a delivery cut off by a
        crash goes out at once after the next start, not after a claim's time)."""
        return self.due(endpoint, now, limit)

    def next_attempt_at(self, endpoint: str) -> float | None:
        """See :meth:`WebhookQueue.next_attempt_at`."""
        rows = self._db.read(
            "SELECT MIN(next_attempt_at) FROM webhook_queue WHERE channel = ? AND endpoint = ?",
            (self.channel, endpoint),
        )
        value = rows[0][0] if rows else None
        return float(value) if value is not None else None

    def retry_later(
        self, delivery_id: int, *, attempts: int, next_attempt_at: float, last_error: str
    ) -> None:
        """See :meth:`WebhookQueue.retry_later`."""
        with self._db.write() as conn:
            conn.execute(
                "UPDATE webhook_queue SET attempts = ?, next_attempt_at = ?, last_error = ? "
                "WHERE channel = ? AND seq = ?",
                (attempts, next_attempt_at, storable(last_error), self.channel, delivery_id),
            )

    def delete(self, delivery_id: int) -> bool:
        """See :meth:`WebhookQueue.delete`."""
        with self._db.write() as conn:
            cur = conn.execute(
                "DELETE FROM webhook_queue WHERE channel = ? AND seq = ?",
                (self.channel, delivery_id),
            )
            return cur.rowcount > 0

    def delete_endpoint(self, endpoint: str) -> int:
        """See :meth:`WebhookQueue.delete_endpoint` (one transaction)."""
        with self._db.write() as conn:
            cur = conn.execute(
                "DELETE FROM webhook_queue WHERE channel = ? AND endpoint = ?",
                (self.channel, endpoint),
            )
            return cur.rowcount

    def pending(self, endpoint: str | None = None) -> list[WebhookDelivery]:
        """See :meth:`WebhookQueue.pending`."""
        if endpoint is None:
            rows = self._db.read(
                f"SELECT {_COLS} FROM webhook_queue WHERE channel = ? ORDER BY seq",
                (self.channel,),
            )
        else:
            rows = self._db.read(
                f"SELECT {_COLS} FROM webhook_queue WHERE channel = ? AND endpoint = ? "
                "ORDER BY seq",
                (self.channel, endpoint),
            )
        return [_delivery(r) for r in rows]

    def count(self, endpoint: str) -> int:
        """See :meth:`WebhookQueue.count`."""
        rows = self._db.read(
            "SELECT COUNT(*) FROM webhook_queue WHERE channel = ? AND endpoint = ?",
            (self.channel, endpoint),
        )
        return int(rows[0][0])


class SqliteIdempotencyStore:
    """:class:`~wechat_sdk.stores.base.IdempotencyStore` over the shared database."""

    def __init__(self, db: Database, channel: str = CHANNEL) -> None:
        self._db = db
        self.channel = channel

    def claim(self, key: str, fingerprint: str, now: float) -> IdempotentRequest | None:
        """See :meth:`IdempotencyStore.claim` (one transaction: two processes or two
        requests never both claim a key)."""
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT key, fingerprint, created_at, status, response FROM idempotency_keys "
                "WHERE channel = ? AND key = ?",
                (self.channel, key),
            ).fetchone()
            if row is not None:
                return IdempotentRequest(*row)
            conn.execute(
                "INSERT INTO idempotency_keys (channel, key, fingerprint, created_at) "
                "VALUES (?, ?, ?, ?)",
                (self.channel, key, fingerprint, now),
            )
        return None

    def finish(self, key: str, status: int, response: str) -> None:
        """See :meth:`IdempotencyStore.finish`."""
        with self._db.write() as conn:
            conn.execute(
                "UPDATE idempotency_keys SET status = ?, response = ? "
                "WHERE channel = ? AND key = ?",
                (status, storable(response), self.channel, key),
            )

    def release(self, key: str) -> None:
        """See :meth:`IdempotencyStore.release`."""
        with self._db.write() as conn:
            conn.execute(
                "DELETE FROM idempotency_keys WHERE channel = ? AND key = ?", (self.channel, key)
            )

    def purge(self, before: float) -> int:
        """See :meth:`IdempotencyStore.purge`."""
        with self._db.write() as conn:
            cur = conn.execute(
                "DELETE FROM idempotency_keys WHERE channel = ? AND created_at < ?",
                (self.channel, before),
            )
            return cur.rowcount
