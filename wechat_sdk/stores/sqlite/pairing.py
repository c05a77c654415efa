"""Pairing requests and approved senders in the database: each write its own durable
transaction (the CLI writes them while the gateway runs; both see each other's at once)."""

from __future__ import annotations

import sqlite3
from typing import Any, Final

from wechat_sdk.stores.base import CHANNEL, ApprovedSender, PairingRequest
from wechat_sdk.stores.sqlite.db import Database

__all__ = ["SqlitePairingStore"]


def _norm(code: str) -> str:
    return code.strip().upper()


_REQ_COLS: Final = "code, account_id, sender_id, sender_name, created_at, expires_at, received_by"


def _request(row: Any) -> PairingRequest:
    return PairingRequest(
        code=row[0],
        account_id=row[1],
        sender_id=row[2],
        sender_name=row[3],
        created_at=row[4],
        expires_at=row[5],
        received_by=row[6],
    )


class SqlitePairingStore:
    """:class:`~wechat_sdk.stores.base.PairingStore` over the shared database."""

    def __init__(self, db: Database, channel: str = CHANNEL) -> None:
        self._db = db
        self.channel = channel

    def add_request(self, request: PairingRequest) -> None:
        """See :meth:`PairingStore.add_request`."""
        code = _norm(request.code)
        with self._db.write() as conn:
            taken = conn.execute(
                "SELECT 1 FROM pairing_requests WHERE channel = ? AND code = ?",
                (self.channel, code),
            ).fetchone()
            if taken is not None:
                raise ValueError(f"pairing code {code!r} is already pending")
            conn.execute(
                "DELETE FROM pairing_requests WHERE channel = ? AND account_id = ? "
                "AND sender_id = ?",
                (self.channel, request.account_id, request.sender_id),
            )
            conn.execute(
                f"INSERT INTO pairing_requests (channel, {_REQ_COLS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.channel,
                    code,
                    request.account_id,
                    request.sender_id,
                    request.sender_name,
                    request.created_at,
                    request.expires_at,
                    request.received_by,
                ),
            )

    def get_request_by_code(self, code: str) -> PairingRequest | None:
        """See :meth:`PairingStore.get_request_by_code`."""
        rows = self._db.read(
            f"SELECT {_REQ_COLS} FROM pairing_requests WHERE channel = ? AND code = ?",
            (self.channel, _norm(code)),
        )
        return _request(rows[0]) if rows else None

    def get_request_for_sender(self, account_id: str, sender_id: str) -> PairingRequest | None:
        """See :meth:`PairingStore.get_request_for_sender`."""
        rows = self._db.read(
            f"SELECT {_REQ_COLS} FROM pairing_requests "
            "WHERE channel = ? AND account_id = ? AND sender_id = ?",
            (self.channel, account_id, sender_id),
        )
        return _request(rows[0]) if rows else None

    def list_requests(self, account_id: str | None = None) -> list[PairingRequest]:
        """See :meth:`PairingStore.list_requests`."""
        if account_id is None:
            rows = self._db.read(
                f"SELECT {_REQ_COLS} FROM pairing_requests WHERE channel = ? "
                "ORDER BY created_at, rowid",
                (self.channel,),
            )
        else:
            rows = self._db.read(
                f"SELECT {_REQ_COLS} FROM pairing_requests WHERE channel = ? AND account_id = ? "
                "ORDER BY created_at, rowid",
                (self.channel, account_id),
            )
        return [_request(r) for r in rows]

    def delete_request(self, code: str) -> PairingRequest | None:
        """See :meth:`PairingStore.delete_request`."""
        with self._db.write() as conn:
            row = conn.execute(
                f"DELETE FROM pairing_requests WHERE channel = ? AND code = ? "
                f"RETURNING {_REQ_COLS}",
                (self.channel, _norm(code)),
            ).fetchone()
        return _request(row) if row is not None else None

    def approve_request(
        self, code: str, now: float, account_id: str | None = None
    ) -> ApprovedSender | None:
        """See :meth:`PairingStore.approve_request` (one transaction)."""
        with self._db.write() as conn:
            row = conn.execute(
                f"SELECT {_REQ_COLS} FROM pairing_requests WHERE channel = ? AND code = ?",
                (self.channel, _norm(code)),
            ).fetchone()
            if row is None:
                return None
            req = _request(row)
            if not req.is_live(now) or (account_id is not None and req.account_id != account_id):
                return None
            conn.execute(
                "DELETE FROM pairing_requests WHERE channel = ? AND code = ?",
                (self.channel, req.code),
            )
            return self._upsert_approved(conn, req.account_id, req.sender_id, now)

    def _upsert_approved(
        self, conn: sqlite3.Connection, account_id: str, sender_id: str, approved_at: float
    ) -> ApprovedSender:
        conn.execute(
            "INSERT INTO approved_senders (channel, account_id, sender_id, approved_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (channel, account_id, sender_id) "
            "DO UPDATE SET approved_at = excluded.approved_at",
            (self.channel, account_id, sender_id, approved_at),
        )
        return ApprovedSender(account_id=account_id, sender_id=sender_id, approved_at=approved_at)

    def add_approved(self, account_id: str, sender_id: str, approved_at: float) -> ApprovedSender:
        """See :meth:`PairingStore.add_approved`."""
        with self._db.write() as conn:
            return self._upsert_approved(conn, account_id, sender_id, approved_at)

    def remove_approved(self, account_id: str, sender_id: str) -> bool:
        """See :meth:`PairingStore.remove_approved`."""
        with self._db.write() as conn:
            cur = conn.execute(
                "DELETE FROM approved_senders WHERE channel = ? AND account_id = ? "
                "AND sender_id = ?",
                (self.channel, account_id, sender_id),
            )
            return cur.rowcount > 0

    def is_approved(self, account_id: str, sender_id: str) -> bool:
        """See :meth:`PairingStore.is_approved`."""
        return bool(
            self._db.read(
                "SELECT 1 FROM approved_senders WHERE channel = ? AND account_id = ? "
                "AND sender_id = ?",
                (self.channel, account_id, sender_id),
            )
        )

    def list_approved(self, account_id: str) -> list[ApprovedSender]:
        """See :meth:`PairingStore.list_approved`."""
        rows = self._db.read(
            "SELECT account_id, sender_id, approved_at FROM approved_senders "
            "WHERE channel = ? AND account_id = ? ORDER BY approved_at, sender_id",
            (self.channel, account_id),
        )
        return [ApprovedSender(account_id=r[0], sender_id=r[1], approved_at=r[2]) for r in rows]

    def purge_expired(self, now: float) -> int:
        """See :meth:`PairingStore.purge_expired`."""
        # Reading first keeps the common case (nothing expired) free of a write.
        if not self._db.read(
            "SELECT 1 FROM pairing_requests WHERE channel = ? AND expires_at <= ? LIMIT 1",
            (self.channel, now),
        ):
            return 0
        with self._db.write() as conn:
            cur = conn.execute(
                "DELETE FROM pairing_requests WHERE channel = ? AND expires_at <= ?",
                (self.channel, now),
            )
            return cur.rowcount
