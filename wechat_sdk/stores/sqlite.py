"""SQLite stores: one durable file shared by the gateway and the CLI.

Design:

- One database file (``<stateDir>/wechat-sdk.sqlite3`` by default); its directory is
  made (or tightened to) mode 0700 and the file 0600. SQLite gives its ``-wal`` and
  ``-shm`` files the database file's mode.
- WAL journal, ``synchronous=FULL``: a committed transaction survives a crash or a
  kill; an uncommitted one leaves no trace.
- Autocommit connection (``isolation_level=None``): reads never hold a transaction
  open, so they see what another process committed at once. Every pairing write is one
  short ``BEGIN IMMEDIATE ... COMMIT``; ``timeout=5`` waits for another process's write.
- Group commit for the gateway's hot path: dedupe marks and history appends made while
  an asyncio event loop runs in the writing thread go into one open transaction (each
  operation in its own savepoint, so a failed one leaves no trace), committed at the
  next turn of the event loop, before any pairing write, by :meth:`SqliteStore.flush`
  and on close. The gateway calls :meth:`SqliteStore.flush_marks` before every send to
  WeChat: a message's dedupe mark is committed (fsync'd) before anything goes out for
  it, so a message is never answered twice after a crash or a power loss. What a crash
  can lose is only uncommitted history (appends of the current event-loop turn, at most
  the last reply's turn): the database stays consistent. Without a running loop (the
  CLI, scripts) every write commits at once, as before.
- The outbox (schema version 2) is written outside the group: every outbox write is its
  own immediate transaction, durable when the call returns (it happens at a stop and
  around the sends of kept messages, never on the hot path).
- The schema version lives in ``PRAGMA user_version``; an older file is migrated when it
  is opened (version 1 gets the outbox table, its rows untouched).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from wechat_sdk.agent import HistoryEntry
from wechat_sdk.puppet import OutboundFile
from wechat_sdk.stores.base import (
    CHANNEL,
    DEFAULT_DEDUPE_MAX_ENTRIES,
    DEFAULT_MAX_CONVERSATIONS,
    ApprovedSender,
    OutboxItem,
    OutboxState,
    PairingRequest,
)

__all__ = [
    "DEFAULT_DB_NAME",
    "SCHEMA_VERSION",
    "SqliteDedupeStore",
    "SqliteHistoryStore",
    "SqliteOutboxStore",
    "SqlitePairingStore",
    "SqliteStore",
    "StoreSchemaError",
]

#: File name of the database inside the state directory.
DEFAULT_DB_NAME: Final = "wechat-sdk.sqlite3"

#: The schema this code writes (``PRAGMA user_version``).
SCHEMA_VERSION: Final = 2

_SCHEMA_V1: Final = """
CREATE TABLE IF NOT EXISTS pairing_requests (
    channel     TEXT NOT NULL,
    code        TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    sender_id   TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    PRIMARY KEY (channel, code),
    UNIQUE (channel, account_id, sender_id)
);
CREATE TABLE IF NOT EXISTS approved_senders (
    channel     TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    sender_id   TEXT NOT NULL,
    approved_at REAL NOT NULL,
    PRIMARY KEY (channel, account_id, sender_id)
);
CREATE TABLE IF NOT EXISTS history_conversations (
    channel    TEXT NOT NULL,
    account_id TEXT NOT NULL,
    conv_key   TEXT NOT NULL,
    last_used  INTEGER NOT NULL,
    PRIMARY KEY (channel, account_id, conv_key)
);
CREATE INDEX IF NOT EXISTS history_conversations_lru
    ON history_conversations (channel, account_id, last_used);
CREATE TABLE IF NOT EXISTS history_entries (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    channel     TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    conv_key    TEXT NOT NULL,
    role        TEXT NOT NULL,
    sender_id   TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    text        TEXT NOT NULL,
    timestamp   REAL NOT NULL,
    message_id  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_entries_conv
    ON history_entries (channel, account_id, conv_key, seq);
CREATE TABLE IF NOT EXISTS dedupe (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    channel    TEXT NOT NULL,
    account_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    seen_at    REAL NOT NULL,
    UNIQUE (channel, account_id, message_id)
);
CREATE INDEX IF NOT EXISTS dedupe_age ON dedupe (channel, account_id, seen_at);
CREATE INDEX IF NOT EXISTS dedupe_order ON dedupe (channel, account_id, seq);
"""

# version 2: the outbox (what a stop kept for the next start)
_SCHEMA_V2: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    channel         TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL,
    created_at      REAL NOT NULL,
    dm              INTEGER NOT NULL,
    text            TEXT,
    mention_ids     TEXT NOT NULL,
    file_name       TEXT,
    file_kind       TEXT,
    file_mime       TEXT,
    file_duration   REAL,
    file_data       BLOB,
    file_path       TEXT,
    file_url        TEXT,
    turn            TEXT
);
CREATE INDEX IF NOT EXISTS outbox_account ON outbox (channel, account_id, seq);
"""


class StoreSchemaError(RuntimeError):
    """The database was written by a newer version of wechat-sdk."""


def _norm(code: str) -> str:
    return code.strip().upper()


def _secure_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = directory.stat()
    if stat.S_IMODE(st.st_mode) & 0o077 and st.st_uid == os.getuid():
        os.chmod(directory, 0o700)


def _secure_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o177:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class _Db:
    """The shared connection: a lock, short transactions, and the group commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(
            str(path), timeout=5.0, isolation_level=None, check_same_thread=False
        )
        try:
            self.conn.execute("PRAGMA busy_timeout = 5000")
            mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"could not enable WAL on {path} (got {mode!r})")
            self.conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            self.conn.close()
            raise
        #: the group transaction is open (BEGIN IMMEDIATE done, COMMIT pending)
        self._group_open = False
        #: it holds at least one dedupe mark (flush_marks commits it)
        self._marks_pending = False
        self._group_loop: asyncio.AbstractEventLoop | None = None
        self._flush_handle: asyncio.Handle | None = None
        #: row-count hints of the stores (per account), dropped whenever a write fails
        self.hints: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error."""
        with self.lock:
            self.flush()  # pending grouped writes first: they came before this one
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (e.g. disk full); never mask the cause.
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                self._drop_hints()
                raise

    @contextlib.contextmanager
    def grouped(self, *, mark: bool = False) -> Iterator[sqlite3.Connection]:
        """A write joining the group transaction (its own savepoint inside it).

        Without a running event loop in this thread it is a plain :meth:`write`.
        ``mark``: the write records a dedupe mark (see :meth:`flush_marks`).
        """
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            with self.write() as conn:
                yield conn
            return
        with self.lock:
            if self._group_open and self._group_loop is not loop:
                self.flush()  # opened under another loop, which may never flush it
            if not self._group_open:
                self.conn.execute("BEGIN IMMEDIATE")
                self._group_open = True
                self._group_loop = loop
                self._flush_handle = loop.call_soon(self._flush_soon)
            self.conn.execute("SAVEPOINT op")
            try:
                yield self.conn
                self.conn.execute("RELEASE op")
            except BaseException:
                self._drop_hints()
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK TO op")
                    self.conn.execute("RELEASE op")
                else:  # SQLite rolled the whole group back (disk full, I/O error)
                    self._group_done()
                raise
            if mark:
                self._marks_pending = True

    def _flush_soon(self) -> None:
        self._flush_handle = None
        self.flush()

    def flush(self) -> None:
        """Commit the group transaction, if one is open."""
        with self.lock:
            if not self._group_open:
                return
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                self._drop_hints()
                raise
            finally:
                if not self.conn.in_transaction:
                    self._group_done()

    def flush_marks(self) -> None:
        """Commit the group transaction if it holds a dedupe mark (cheap otherwise)."""
        if self._marks_pending:
            self.flush()

    def _group_done(self) -> None:
        self._group_open = False
        self._marks_pending = False
        self._group_loop = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def _drop_hints(self) -> None:
        for hint in self.hints:
            hint.clear()

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run a query (sees every committed change, and this connection's pending group)."""
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def migrate(self) -> None:
        with self.write() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreSchemaError(
                    f"{self.path} has schema version {version}, newer than this wechat-sdk "
                    f"understands ({SCHEMA_VERSION}); upgrade wechat-sdk"
                )
            if version < 1:
                _run_script(conn, _SCHEMA_V1)
            if version < 2:
                _run_script(conn, _SCHEMA_V2)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self.lock:
            try:
                self.flush()
            finally:
                self.conn.close()


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run DDL statements one by one (``executescript`` would commit the transaction)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


_REQ_COLS: Final = "code, account_id, sender_id, sender_name, created_at, expires_at"


def _request(row: Any) -> PairingRequest:
    return PairingRequest(
        code=row[0],
        account_id=row[1],
        sender_id=row[2],
        sender_name=row[3],
        created_at=row[4],
        expires_at=row[5],
    )


class SqlitePairingStore:
    """:class:`~wechat_sdk.stores.base.PairingStore` over the shared database."""

    def __init__(self, db: _Db, channel: str = CHANNEL) -> None:
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
                f"INSERT INTO pairing_requests (channel, {_REQ_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    self.channel,
                    code,
                    request.account_id,
                    request.sender_id,
                    request.sender_name,
                    request.created_at,
                    request.expires_at,
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


class SqliteHistoryStore:
    """:class:`~wechat_sdk.stores.base.HistoryStore` over the shared database."""

    def __init__(
        self,
        db: _Db,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        channel: str = CHANNEL,
    ) -> None:
        if max_conversations < 1:
            raise ValueError("max_conversations must be at least 1")
        self._db = db
        self.max_conversations = max_conversations
        self.channel = channel
        # conversations per account, as counted by this process: another process adding
        # conversations (none does: only the gateway writes history) would only delay
        # an eviction until the count is taken again after a failed write or a reopen
        self._counts: dict[str, int] = {}
        db.hints.append(self._counts)

    def append(self, account_id: str, key: str, entry: HistoryEntry, limit: int) -> None:
        """See :meth:`HistoryStore.append`."""
        if limit <= 0:
            self.clear(account_id, key)
            return
        ch = self.channel
        with self._db.grouped() as conn:
            cur = conn.execute(
                "INSERT INTO history_entries (channel, account_id, conv_key, role, sender_id, "
                "sender_name, text, timestamp, message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    ch,
                    account_id,
                    key,
                    entry.role,
                    entry.sender_id,
                    entry.sender_name,
                    entry.text,
                    entry.timestamp,
                    entry.message_id,
                ),
            )
            seq = cur.lastrowid
            cur = conn.execute(
                "UPDATE history_conversations SET last_used = ? WHERE channel = ? "
                "AND account_id = ? AND conv_key = ?",
                (seq, ch, account_id, key),
            )
            if cur.rowcount == 0:  # a new conversation: maybe one too many
                count = self._count(conn, account_id)
                conn.execute(
                    "INSERT INTO history_conversations (channel, account_id, conv_key, "
                    "last_used) VALUES (?, ?, ?, ?)",
                    (ch, account_id, key, seq),
                )
                self._counts[account_id] = count = count + 1
                if count > self.max_conversations:
                    evicted = conn.execute(
                        "SELECT conv_key FROM history_conversations WHERE channel = ? "
                        "AND account_id = ? ORDER BY last_used LIMIT ?",
                        (ch, account_id, count - self.max_conversations),
                    ).fetchall()
                    for (old_key,) in evicted:
                        self._forget(conn, account_id, old_key)
            conn.execute(
                "DELETE FROM history_entries WHERE channel = ? AND account_id = ? "
                "AND conv_key = ? AND seq <= (SELECT seq FROM history_entries "
                "WHERE channel = ? AND account_id = ? AND conv_key = ? "
                "ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (ch, account_id, key, ch, account_id, key, limit),
            )

    def _count(self, conn: sqlite3.Connection, account_id: str) -> int:
        """Conversations tracked for the account (counted once, then kept up to date)."""
        count = self._counts.get(account_id)
        if count is None:
            count = int(
                conn.execute(
                    "SELECT count(*) FROM history_conversations WHERE channel = ? "
                    "AND account_id = ?",
                    (self.channel, account_id),
                ).fetchone()[0]
            )
            self._counts[account_id] = count
        return count

    def _forget(self, conn: sqlite3.Connection, account_id: str, key: str) -> None:
        conn.execute(
            "DELETE FROM history_entries WHERE channel = ? AND account_id = ? AND conv_key = ?",
            (self.channel, account_id, key),
        )
        cur = conn.execute(
            "DELETE FROM history_conversations WHERE channel = ? AND account_id = ? "
            "AND conv_key = ?",
            (self.channel, account_id, key),
        )
        if cur.rowcount and account_id in self._counts:
            self._counts[account_id] -= cur.rowcount

    def get(self, account_id: str, key: str) -> list[HistoryEntry]:
        """See :meth:`HistoryStore.get`."""
        rows = self._db.read(
            "SELECT role, sender_id, sender_name, text, timestamp, message_id "
            "FROM history_entries WHERE channel = ? AND account_id = ? AND conv_key = ? "
            "ORDER BY seq",
            (self.channel, account_id, key),
        )
        # positional, in the declared field order: a third cheaper than by keyword
        return list(itertools.starmap(HistoryEntry, rows))

    def clear(self, account_id: str, key: str) -> None:
        """See :meth:`HistoryStore.clear`."""
        with self._db.grouped() as conn:
            self._forget(conn, account_id, key)


class SqliteDedupeStore:
    """:class:`~wechat_sdk.stores.base.DedupeStore` over the shared database."""

    def __init__(
        self, db: _Db, max_entries: int = DEFAULT_DEDUPE_MAX_ENTRIES, channel: str = CHANNEL
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._db = db
        self.max_entries = max_entries
        self.channel = channel
        # marks per account, as counted by this process (only the gateway writes them),
        # and the oldest mark's time, at most the real one (the expiry sweep runs when
        # it could find something)
        self._counts: dict[str, int] = {}
        self._oldest: dict[str, float] = {}
        db.hints.append(self._counts)
        db.hints.append(self._oldest)

    def check_and_add(self, account_id: str, message_id: str, now: float, ttl: float) -> bool:
        """See :meth:`DedupeStore.check_and_add`."""
        ch = self.channel
        with self._db.grouped(mark=True) as conn:
            row = conn.execute(
                "SELECT seen_at FROM dedupe WHERE channel = ? AND account_id = ? "
                "AND message_id = ?",
                (ch, account_id, message_id),
            ).fetchone()
            if row is not None and now - float(row[0]) < ttl:
                return True
            count = self._count(conn, account_id)
            if row is not None:
                conn.execute(
                    "DELETE FROM dedupe WHERE channel = ? AND account_id = ? AND message_id = ?",
                    (ch, account_id, message_id),
                )
                count -= 1
            oldest = self._oldest.get(account_id)
            if oldest is None or oldest <= now - ttl:  # something may have expired
                cur = conn.execute(
                    "DELETE FROM dedupe WHERE channel = ? AND account_id = ? AND seen_at <= ?",
                    (ch, account_id, now - ttl),
                )
                count -= max(cur.rowcount, 0)
                first = conn.execute(
                    "SELECT seen_at FROM dedupe WHERE channel = ? AND account_id = ? "
                    "ORDER BY seen_at LIMIT 1",
                    (ch, account_id),
                ).fetchone()
                oldest = float(first[0]) if first is not None else now
            self._oldest[account_id] = min(oldest, now)
            conn.execute(
                "INSERT INTO dedupe (channel, account_id, message_id, seen_at) VALUES (?, ?, ?, ?)",
                (ch, account_id, message_id, now),
            )
            count += 1
            if count > self.max_entries:  # the oldest go (exact: the count is kept)
                cur = conn.execute(
                    "DELETE FROM dedupe WHERE seq IN (SELECT seq FROM dedupe WHERE channel = ? "
                    "AND account_id = ? ORDER BY seq LIMIT ?)",
                    (ch, account_id, count - self.max_entries),
                )
                count -= max(cur.rowcount, 0)
            self._counts[account_id] = count
            return False

    def _count(self, conn: sqlite3.Connection, account_id: str) -> int:
        """Marks kept for the account (counted once, then kept up to date)."""
        count = self._counts.get(account_id)
        if count is None:
            count = int(
                conn.execute(
                    "SELECT count(*) FROM dedupe WHERE channel = ? AND account_id = ?",
                    (self.channel, account_id),
                ).fetchone()[0]
            )
        return count


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

    def __init__(self, db: _Db, channel: str = CHANNEL) -> None:
        self._db = db
        self.channel = channel

    def add(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        """See :meth:`OutboxStore.add` (one transaction)."""
        added = []
        with self._db.write() as conn:
            for item in items:
                f = item.file
                cur = conn.execute(
                    f"INSERT INTO outbox (channel, {_OUTBOX_COLS.removeprefix('seq, ')}) "
                    "VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.channel,
                        item.account_id,
                        item.conversation_id,
                        item.kind,
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
                added.append(dataclasses.replace(item, id=cur.lastrowid, state="pending"))
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


class SqliteStore:
    """The SQLite :class:`~wechat_sdk.stores.base.Store` bundle: one file, one connection.

    ``path`` is the database file; its parent directory is created with mode 0700
    (an existing one owned by this user is tightened to 0700), the file with mode
    0600 (an existing one is tightened too). Several processes may open the same
    file at once (the gateway and the CLI): each sees the others' commits at once.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        dedupe_max_entries: int = DEFAULT_DEDUPE_MAX_ENTRIES,
        channel: str = CHANNEL,
    ) -> None:
        self.path = Path(path).expanduser()
        self.channel = channel
        _secure_dir(self.path.parent)
        _secure_file(self.path)
        self._db = _Db(self.path)
        try:
            self._db.migrate()
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    _secure_file(side)
        except BaseException:
            self._db.close()
            raise
        self._closed = False
        self.pairing = SqlitePairingStore(self._db, channel)
        self.history = SqliteHistoryStore(self._db, max_conversations, channel)
        self.dedupe = SqliteDedupeStore(self._db, dedupe_max_entries, channel)
        self.outbox = SqliteOutboxStore(self._db, channel)

    @classmethod
    def in_state_dir(
        cls,
        state_dir: Path,
        *,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        dedupe_max_entries: int = DEFAULT_DEDUPE_MAX_ENTRIES,
        channel: str = CHANNEL,
    ) -> SqliteStore:
        """Open ``<state_dir>/wechat-sdk.sqlite3`` (the default location)."""
        return cls(
            Path(state_dir).expanduser() / DEFAULT_DB_NAME,
            max_conversations=max_conversations,
            dedupe_max_entries=dedupe_max_entries,
            channel=channel,
        )

    def flush(self) -> None:
        """Commit the grouped writes now (the gateway's dedupe marks and history)."""
        if not self._closed:
            self._db.flush()

    def flush_marks(self) -> None:
        """Commit the grouped writes if they hold a dedupe mark: called before each send,
        so no reply goes out for a message whose mark could still be lost."""
        if not self._closed:
            self._db.flush_marks()

    def close(self) -> None:
        """Commit what is grouped, close the connection (idempotent)."""
        if not self._closed:
            self._closed = True
            self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
