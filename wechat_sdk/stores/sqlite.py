"""SQLite stores: one durable file shared by the gateway and the CLI.

Design:

- One database file (``<stateDir>/wechat-sdk.sqlite3`` by default); its directory is
  made (or tightened to) mode 0700 and the file 0600. SQLite gives its ``-wal`` and
  ``-shm`` files the database file's mode.
- WAL journal, ``synchronous=NORMAL`` plus an fsync of the WAL of our own: a pairing or
  outbox write is fsync'd before the call returns (as with ``FULL``); a dedupe mark
  before any reply to its message goes out (:meth:`SqliteStore.marks_durable`, whose
  fsync runs where the store's clock says: a worker thread on a real clock, inline on the
  simulator's virtual clock). A committed transaction survives a crash or a kill at once,
  and a power loss once fsync'd; an uncommitted one leaves no trace.
- Autocommit connection (``isolation_level=None``): reads never hold a transaction
  open, so they see what another process committed at once. Every pairing write is one
  short ``BEGIN IMMEDIATE ... COMMIT``; ``timeout=5`` waits for another process's write.
- Write-behind for the gateway's hot path: the history and dedupe stores answer reads
  from memory and queue their writes; the writes of one turn of the event loop are
  committed together at its next turn, a few ``executemany`` statements in one
  transaction (at once without a running loop: the CLI, scripts), and before a send
  whose mark is not durable yet, before any pairing or outbox write, by
  :meth:`SqliteStore.flush`, and on close. What a crash can lose is only history not
  committed yet: the database stays consistent. A failed commit is rolled back and its
  writes stay queued for the next one. Text UTF-8 cannot encode (a lone surrogate) is
  stored with ``?`` in its place, so a queued write never fails at its commit.
- Only one process writes history and dedupe marks (the gateway: one per state
  directory); the CLI reads and writes pairing rows only.
- The schema version lives in ``PRAGMA user_version``; an older file is migrated when it
  is opened (version 1 gets the outbox table, its rows untouched).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import json
import logging
import os
import sqlite3
import stat
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

from wechat_sdk.agent import HistoryEntry
from wechat_sdk.clock import Clock, RealClock
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

log = logging.getLogger("wechat_sdk.stores")

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

#: Indexes that only per-message queries used: history and dedupe are now read once per
#: account and kept in memory, so these cost every write and serve nothing.
_DROPPED_INDEXES: Final = """
DROP INDEX IF EXISTS dedupe_age;
DROP INDEX IF EXISTS dedupe_order;
DROP INDEX IF EXISTS history_conversations_lru;
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


class _Writer(Protocol):
    """A store with queued writes (see :class:`_Db`)."""

    def take(self) -> object | None:
        """The queued writes as one batch (a fresh one is started), None if there are none."""
        ...

    def write(self, conn: sqlite3.Connection, batch: Any) -> None:
        """Apply a batch :meth:`take` returned, inside the caller's transaction."""
        ...


class _Db:
    """The shared connection: short transactions, the write-behind queue, durability."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self.conn = sqlite3.connect(str(path), timeout=5.0, isolation_level=None)
        try:
            self.conn.execute("PRAGMA busy_timeout = 5000")
            mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"could not enable WAL on {path} (got {mode!r})")
            # commits append to the WAL without an fsync; durability comes from our own
            # fsync of the WAL: at once for pairing writes, before a send for the dedupe
            # marks (marks_durable: in a thread on a real clock)
            self.conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            self.conn.close()
            raise
        self.closed = False
        self._writers: list[_Writer] = []
        #: batches taken whose commit failed: written first by the next commit, in order
        self._unwritten: list[tuple[_Writer, Any]] = []
        #: dedupe marks queued so far, how many of them are committed, and how many durable
        self.marks_queued = 0
        self.marks_committed = 0
        self.marks_synced = 0
        #: one commit and fsync for the marks at a time (see marks_durable), per loop
        self._syncing: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._commit_loop: asyncio.AbstractEventLoop | None = None

    def register(self, writer: _Writer) -> None:
        self._writers.append(writer)

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error."""
        self.flush()  # queued writes first: they came before this one
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back (e.g. disk full); never mask the cause.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.sync()  # durable when the call returns, as with synchronous=FULL

    def queued(self) -> None:
        """A store queued a write: commit it at the next turn of the event loop, so the
        writes of one turn share a commit; at once without a running loop (the CLI)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._commit_loop is not loop:  # (one of a loop that ended never runs: replaced)
            self._commit_loop = loop
            loop.call_soon(self._commit_soon)

    def _commit_soon(self) -> None:
        self._commit_loop = None
        if self.closed:
            return
        try:
            self.flush()
        except Exception as exc:  # never into the event loop: retried with the next commit
            log.error(
                "could not write history and dedupe marks to %s: %s (kept in memory; "
                "written with the next commit)",
                self.path,
                exc,
            )

    def flush(self) -> None:
        """Commit every queued write in one transaction, if any is queued.

        On failure the transaction is rolled back, the writes stay queued (in order) for
        the next commit, and the error is raised.
        """
        marks = self.marks_queued
        batches = self._unwritten
        self._unwritten = []
        for w in self._writers:
            batch = w.take()
            if batch is not None:
                batches.append((w, batch))
        if batches:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                for w, batch in batches:
                    w.write(self.conn, batch)
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                self._unwritten = batches
                raise
        self.marks_committed = marks

    def sync(self) -> None:
        """fsync the WAL: every committed transaction is on disk (blocking)."""
        marks = self.marks_committed
        _sync_wal(self.path)
        self.marks_synced = max(self.marks_synced, marks)

    async def marks_durable(self, upto: int | None) -> None:
        """Return once the first ``upto`` dedupe marks (None: every one queued) are
        committed and fsync'd; the fsync runs where the clock says (a thread, on a real
        clock). A commit or fsync error is raised to this caller; the next one retries."""
        wanted = self.marks_queued if upto is None else upto
        if self.marks_synced >= wanted:
            return
        loop = asyncio.get_running_loop()
        if self._syncing is None or self._syncing[0] is not loop:
            # (the lock of a loop that ended may be held forever by a task it left)
            self._syncing = (loop, asyncio.Lock())
        # one commit and fsync at a time: whoever waits meanwhile finds its marks covered
        # by it, or commits every mark queued so far for the next one
        async with self._syncing[1]:
            if self.marks_synced >= wanted or self.closed:  # (close() synced everything)
                return
            self.flush()
            marks = self.marks_committed
            await self.clock.run_blocking(functools.partial(_sync_wal, self.path))
            self.marks_synced = max(self.marks_synced, marks)

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run a query (sees every committed change)."""
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
                _run_script(conn, _DROPPED_INDEXES)
            else:  # (a version 2 file of an early build may still have them)
                _run_script(conn, _DROPPED_INDEXES)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.flush()
            self.sync()
        finally:
            self.conn.close()


def _sync_wal(db_path: Path) -> None:
    """Flush the WAL's data to disk (nothing to do if there is none): ``fdatasync`` where
    there is one (what SQLite itself uses for its WAL: the size is flushed, timestamps
    are not), else ``fsync``. A descriptor of its own, so a close meanwhile harms nothing."""
    try:
        fd = os.open(f"{db_path}-wal", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        (getattr(os, "fdatasync", None) or os.fsync)(fd)
    finally:
        os.close(fd)


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


_NUMBER: Final = (int, float)


def _storable(text: str) -> str:
    """``text``, with what UTF-8 cannot encode (a lone surrogate, e.g. half an emoji from
    a cut JSON escape) replaced by ``?``: queued writes must never fail at the commit."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


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
    role, sender_id, sender_name, text, message_id = map(_storable, fields)
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


class _Conversation:
    """One conversation's entries as in the file (plus what is queued)."""

    __slots__ = ("entries", "in_file", "loaded")

    def __init__(self, entries: list[HistoryEntry] | None = None) -> None:
        self.entries: list[HistoryEntry] = entries if entries is not None else []
        #: entries read from the file (a conversation known only by its key: not yet)
        self.loaded = entries is not None
        #: the file may hold rows of it (False: new since the last batch was taken, so
        #: forgetting it needs no DELETE)
        self.in_file = entries is None


class _HistoryBatch:
    """Queued history writes, per (account, conversation), applied in this order:
    forgotten conversations (all their rows), new entries, trims (to the newest n),
    last uses."""

    __slots__ = ("forget", "insert", "trim", "used")

    def __init__(self) -> None:
        self.forget: dict[tuple[str, str], None] = {}
        self.insert: dict[tuple[str, str], list[HistoryEntry]] = {}
        self.trim: dict[tuple[str, str], int] = {}
        self.used: dict[tuple[str, str], int] = {}


class SqliteHistoryStore:
    """:class:`~wechat_sdk.stores.base.HistoryStore` over the shared database.

    Each account's conversation list (in least-recently-appended order) is read on the
    account's first use, a conversation's entries on its first use; then reads are
    answered from memory and writes are queued for the next commit (see the module).
    """

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
        self._accounts: dict[str, OrderedDict[str, _Conversation]] = {}
        #: the newest ``last_used`` written (the order of conversations), read once
        self._tick: int | None = None
        self._q = _HistoryBatch()
        db.register(self)

    def _account(self, account_id: str) -> OrderedDict[str, _Conversation]:
        convs = self._accounts.get(account_id)
        if convs is None:
            rows = self._db.read(
                "SELECT conv_key FROM history_conversations WHERE channel = ? "
                "AND account_id = ? ORDER BY last_used",
                (self.channel, account_id),
            )
            convs = self._accounts[account_id] = OrderedDict(
                (key, _Conversation()) for (key,) in rows
            )
        return convs

    def _loaded(self, account_id: str, key: str) -> _Conversation | None:
        """The conversation with its entries read (None if unknown)."""
        conv = self._account(account_id).get(key)
        if conv is not None and not conv.loaded:
            rows = self._db.read(
                "SELECT role, sender_id, sender_name, text, timestamp, message_id "
                "FROM history_entries WHERE channel = ? AND account_id = ? AND conv_key = ? "
                "ORDER BY seq",
                (self.channel, account_id, key),
            )
            # positional, in the declared field order: a third cheaper than by keyword
            conv.entries = list(itertools.starmap(HistoryEntry, rows))
            conv.loaded = True
        return conv

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
        convs = self._accounts.get(account_id)
        if convs is None:
            convs = self._account(account_id)
        conv = convs.get(key)
        if conv is None:
            conv = convs[key] = _Conversation([])
        else:
            if not conv.loaded:
                self._loaded(account_id, key)
            convs.move_to_end(key)  # the most recently used
        conv.entries.append(entry)
        extra = len(conv.entries) - limit
        if extra > 0:
            del conv.entries[:extra]
        self._tick += 1
        ck = (account_id, key)
        q = self._q
        queued = q.insert.get(ck)
        if queued is None:
            q.insert[ck] = [entry]
        else:
            queued.append(entry)
            if len(queued) > len(conv.entries):
                del queued[: len(queued) - len(conv.entries)]  # never written at all
        if extra > 0 or ck in q.trim:  # (a trim queued earlier keeps what memory holds now)
            q.trim[ck] = len(conv.entries)
        q.used[ck] = self._tick
        while len(convs) > self.max_conversations:
            self._queue_forget(account_id, *convs.popitem(last=False))
        self._db.queued()

    def _queue_forget(self, account_id: str, key: str, conv: _Conversation) -> None:
        ck = (account_id, key)
        q = self._q
        q.insert.pop(ck, None)
        q.trim.pop(ck, None)
        q.used.pop(ck, None)
        if conv.in_file:  # (a forget queued earlier for the same key stays queued)
            q.forget[ck] = None

    def get(self, account_id: str, key: str) -> list[HistoryEntry]:
        """See :meth:`HistoryStore.get`."""
        conv = self._loaded(account_id, key)
        return list(conv.entries) if conv is not None else []

    def clear(self, account_id: str, key: str) -> None:
        """See :meth:`HistoryStore.clear`."""
        conv = self._account(account_id).pop(key, None)
        if conv is not None:
            self._queue_forget(account_id, key, conv)
            self._db.queued()

    # ------------------------------------------------------------ write-behind

    def take(self) -> _HistoryBatch | None:
        q = self._q
        if not (q.forget or q.insert or q.used):
            return None
        self._q = _HistoryBatch()
        # on their way to the file (a failed commit writes them before any later batch)
        for account_id, key in q.used:
            conv = self._accounts[account_id].get(key)
            if conv is not None:
                conv.in_file = True
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


class _DedupeBatch:
    """Queued dedupe writes: marks to delete, then marks to (re)write, in order."""

    __slots__ = ("add", "delete")

    def __init__(self) -> None:
        self.add: dict[tuple[str, str], float] = {}
        self.delete: dict[tuple[str, str], None] = {}


class SqliteDedupeStore:
    """:class:`~wechat_sdk.stores.base.DedupeStore` over the shared database.

    Each account's marks are read on its first use, oldest first; then checks are
    answered from memory and new marks are queued for the next commit (see the module).
    """

    def __init__(
        self, db: _Db, max_entries: int = DEFAULT_DEDUPE_MAX_ENTRIES, channel: str = CHANNEL
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._db = db
        self.max_entries = max_entries
        self.channel = channel
        self._seen: dict[str, OrderedDict[str, float]] = {}
        self._q = _DedupeBatch()
        db.register(self)

    def _account(self, account_id: str) -> OrderedDict[str, float]:
        seen = self._seen.get(account_id)
        if seen is None:
            rows = self._db.read(
                "SELECT message_id, seen_at FROM dedupe WHERE channel = ? AND account_id = ? "
                "ORDER BY seq",
                (self.channel, account_id),
            )
            seen = self._seen[account_id] = OrderedDict(rows)
        return seen

    def check_and_add(self, account_id: str, message_id: str, now: float, ttl: float) -> bool:
        """See :meth:`DedupeStore.check_and_add`."""
        message_id = _storable(message_id)
        seen = self._account(account_id)
        at = seen.get(message_id)
        if at is not None and now - at < ttl:
            return True
        if at is not None:
            del seen[message_id]
        # oldest first: drop the expired head, then enforce the bound
        while seen:
            first = next(iter(seen))
            if now - seen[first] < ttl:
                break
            del seen[first]
            self._forget(account_id, first)
        seen[message_id] = now
        k = (account_id, message_id)
        q = self._q
        q.delete.pop(k, None)
        q.add.pop(k, None)  # re-added: it goes to the end
        q.add[k] = now
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
                "INSERT OR REPLACE INTO dedupe (channel, account_id, message_id, seen_at) "
                "VALUES (?, ?, ?, ?)",
                [(ch, a, m, t) for (a, m), t in batch.add.items()],
            )


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
    ``clock`` decides where the fsync a send waits for runs (see
    :meth:`~wechat_sdk.clock.Clock.run_blocking`): give the gateway's.

    Example:
        ```python
        with SqliteStore.in_state_dir(Path("~/.clawdbot/wechat")) as store:
            print(store.pairing.list_requests())
        ```
    """

    def __init__(
        self,
        path: Path,
        *,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        dedupe_max_entries: int = DEFAULT_DEDUPE_MAX_ENTRIES,
        channel: str = CHANNEL,
        clock: Clock | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self.channel = channel
        _secure_dir(self.path.parent)
        _secure_file(self.path)
        self._db = _Db(self.path, clock or RealClock())
        try:
            self._db.migrate()
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    _secure_file(side)
        except BaseException:
            self._db.close()
            raise
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
        clock: Clock | None = None,
    ) -> SqliteStore:
        """Open ``<state_dir>/wechat-sdk.sqlite3`` (the default location)."""
        return cls(
            Path(state_dir).expanduser() / DEFAULT_DB_NAME,
            max_conversations=max_conversations,
            dedupe_max_entries=dedupe_max_entries,
            channel=channel,
            clock=clock,
        )

    def flush(self) -> None:
        """Commit the queued writes (history, dedupe marks) now, without an fsync."""
        if not self._db.closed:
            self._db.flush()

    def mark_position(self) -> int:
        """See :meth:`Store.mark_position`: how many dedupe marks were recorded so far."""
        return self._db.marks_queued

    async def marks_durable(self, upto: int | None) -> None:
        """See :meth:`Store.marks_durable`: commits the queued writes and fsyncs the WAL
        if a mark up to ``upto`` is not durable yet. One commit and fsync at a time:
        callers waiting meanwhile share the next."""
        if not self._db.closed:
            await self._db.marks_durable(upto)

    def close(self) -> None:
        """Commit what is queued, close the connection (idempotent)."""
        self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
