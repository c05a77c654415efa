"""The database file: its connection and schema, the write-behind queue, durability.

One :class:`Database` per store: the pairing, history, dedupe and outbox stores of a
:class:`~wechat_sdk.stores.sqlite.SqliteStore` share it. See the package's docstring for
what is committed when and what a crash can lose.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import math
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, Protocol

from wechat_sdk.clock import BACKGROUND, Clock

__all__ = [
    "DEFAULT_DB_NAME",
    "SCHEMA_VERSION",
    "Database",
    "StoreSchemaError",
    "Writer",
    "run_script",
    "storable",
]

log = logging.getLogger("wechat_sdk.stores")

#: Seconds of the clock's time a queued history or dedupe write may wait for its commit
#: (a send commits what it needs at once). A burst of messages on a real clock then
#: shares one commit per this much time: a commit per turn of the event loop made about
#: 30 times as many. A crash can lose at most this much history.
COMMIT_DELAY_S: Final = 0.1

#: Seconds an fsync of the WAL may take and still run on the event loop (see
#: Database.durable): an SSD's take a fraction of a millisecond.
INLINE_FSYNC_MAX_S: Final = 0.002

#: File name of the database inside the state directory.
DEFAULT_DB_NAME: Final = "wechat-sdk.sqlite3"

#: The schema this code writes (``PRAGMA user_version``).
SCHEMA_VERSION: Final = 6

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

# version 3: the webhook queue and the HTTP API's idempotency keys
_SCHEMA_V3: Final = """
CREATE TABLE IF NOT EXISTS webhook_queue (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    channel         TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    attempts        INTEGER NOT NULL,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS webhook_queue_due
    ON webhook_queue (channel, endpoint, next_attempt_at, seq);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    channel     TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at  REAL NOT NULL,
    status      INTEGER,
    response    TEXT,
    PRIMARY KEY (channel, key)
);
"""

# version 4: the pairing code of a kept pairing text (not sent once its request is gone)
_SCHEMA_V4: Final = """
ALTER TABLE outbox ADD COLUMN pairing_code TEXT;
"""

# version 5: the claim of a journaled message and of its dedupe mark (the next start tells
# the mark of a message it takes in again from an earlier copy's); the account a pairing
# request's sender wrote to (approve --notify tells them through it; NULL in a request
# stored before)
_SCHEMA_V5: Final = """
ALTER TABLE outbox ADD COLUMN claim TEXT;
ALTER TABLE dedupe ADD COLUMN claim TEXT;
ALTER TABLE pairing_requests ADD COLUMN received_by TEXT;
"""

# version 6: a kept text that a reply window's packing ended with the notice that more
# follows (it loses it when set to wait for the user's next message); 0 in a row kept
# before
_SCHEMA_V6: Final = """
ALTER TABLE outbox ADD COLUMN notice INTEGER NOT NULL DEFAULT 0;
"""

#: Indexes that only per-message queries used: history and dedupe are read once per
#: account or conversation, so these cost every write and serve nothing.
_DROPPED_INDEXES: Final = """
DROP INDEX IF EXISTS dedupe_age;
DROP INDEX IF EXISTS dedupe_order;
DROP INDEX IF EXISTS history_conversations_lru;
"""


class StoreSchemaError(RuntimeError):
    """The database was written by a newer version of wechat-sdk."""


class Writer(Protocol):
    """A store whose writes wait in memory for the next commit (history, dedupe)."""

    def take(self) -> object | None:
        """The queued writes as one batch (a fresh one is started), None if there are none."""
        ...

    def write(self, conn: sqlite3.Connection, batch: Any) -> None:
        """Apply a batch :meth:`take` returned, inside the caller's transaction."""
        ...


class Database:
    """One database file: short transactions, the write-behind queue, durability.

    ``path``'s directory is made (or tightened to) mode 0700 and the file 0600.
    """

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        _secure_dir(path.parent)
        _secure_file(path)
        self.conn = sqlite3.connect(str(path), timeout=5.0, isolation_level=None)
        self.closed = False
        try:
            self.conn.execute("PRAGMA busy_timeout = 5000")
            mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"could not enable WAL on {path} (got {mode!r})")
            # commits append to the WAL without an fsync; durability comes from our own
            # fsync of the WAL: at once for a write of its own, before a send for the
            # dedupe marks (durable)
            self.conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            self.conn.close()
            raise
        self._writers: list[Writer] = []
        #: batches taken whose commit failed: written first by the next commit, in order
        self.unwritten: list[tuple[Writer, Any]] = []
        #: dedupe marks queued so far, how many of them are committed, and fsync'd
        self.marks_queued = 0
        self.marks_committed = 0
        self.marks_synced = 0
        #: transactions committed on this connection so far, and how many an fsync covers
        self.commits = 0
        self.commits_synced = 0
        #: one commit and fsync of the marks at a time, per event loop
        self._syncing: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        #: seconds this disk's last fsync of the marks took (unknown at first: a thread)
        self.fsync_s = math.inf
        #: the task that commits what is queued, COMMIT_DELAY_S after the first write
        self._committer: asyncio.Task[None] | None = None
        try:
            self._migrate()
            for suffix in ("-wal", "-shm"):  # (SQLite gives them the file's mode)
                side = path.with_name(path.name + suffix)
                if side.exists():
                    _secure_file(side)
        except BaseException:
            self.close()
            raise

    def register(self, writer: Writer) -> None:
        self._writers.append(writer)

    # ------------------------------------------------------------ transactions

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run a query (sees every committed change)."""
        return self.conn.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction, committed and fsync'd on success (durable
        when the block ends), rolled back on error."""
        self.flush()  # queued writes first: they came before this one
        with self.transaction() as conn:
            yield conn
        self.sync()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction, committed on success without an fsync (it
        survives a crash of the process; :meth:`durable` with :attr:`commits` waits for
        the fsync that keeps it across a power loss), rolled back on error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back (e.g. disk full); never mask the cause.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.commits += 1

    # ------------------------------------------------------------ write-behind

    def queued(self) -> None:
        """A writer queued a write: commit it within :data:`COMMIT_DELAY_S` of the
        clock's time, with whatever else is queued by then; at once without a running
        event loop (the CLI, scripts)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        committer = self._committer
        # (one of a loop that ended never runs: replaced)
        if committer is None or committer.done() or committer.get_loop() is not loop:
            # (in a context of its own: the commit is the store's, for every account; in
            # the context of the task that queued first, its lines showed that account)
            self._committer = loop.create_task(self._commit_later(), context=contextvars.Context())

    async def _commit_later(self) -> None:
        BACKGROUND.set(True)  # housekeeping: on a virtual clock it keeps no world busy
        await self.clock.sleep(COMMIT_DELAY_S)
        if self.closed:
            return
        try:
            self.flush()
        except Exception as exc:  # not into the event loop: retried with the next commit
            log.error(
                "could not write history and dedupe marks to %s: %s (kept in memory; "
                "written with the next commit)",
                self.path,
                exc,
            )

    def flush(self) -> None:
        """Commit every queued write in one transaction (no fsync), if any is queued.

        On failure the transaction is rolled back, the writes stay queued (in order) for
        the next commit, and the error is raised.
        """
        marks = self.marks_queued
        batches, self.unwritten = self.unwritten, []
        for w in self._writers:
            batch = w.take()
            if batch is not None:
                batches.append((w, batch))
        if batches:
            try:
                with self.transaction() as conn:
                    for w, batch in batches:
                        w.write(conn, batch)
            except BaseException:
                self.unwritten = batches
                raise
        self.marks_committed = marks

    # ------------------------------------------------------------ durability

    def sync(self) -> None:
        """fsync the WAL here: every committed transaction is on disk (blocking)."""
        marks, commits = self.marks_committed, self.commits
        _sync_wal(self.path)
        self._synced(marks, commits)

    def _synced(self, marks: int, commits: int) -> None:
        """An fsync covered this many marks and commits."""
        self.marks_synced = max(self.marks_synced, marks)
        self.commits_synced = max(self.commits_synced, commits)

    def _lock(self) -> asyncio.Lock:
        """The lock of the one commit and fsync at a time (this event loop's)."""
        loop = asyncio.get_running_loop()
        if self._syncing is None or self._syncing[0] is not loop:
            # (the lock of a loop that ended may be held forever by a task it left)
            self._syncing = (loop, asyncio.Lock())
        return self._syncing[1]

    async def durable(self, marks: int | None, commits: int = 0) -> None:
        """Return once the first ``marks`` dedupe marks (None: every one queued so far)
        and the first ``commits`` transactions of :meth:`transaction` are committed and
        fsync'd. Whatever is queued is committed with them: one fsync makes a batch of
        messages a transport recorded and the gateway's marks of them durable together.
        A commit or fsync error is raised to this caller; the next retries.

        Where the fsync runs: on the event loop while this disk's last one took at most
        :data:`INLINE_FSYNC_MAX_S` (a reply waiting for it then saves the two hops to a
        worker thread and back, which cost more than the fsync on a busy machine), else
        where the clock says (a worker thread on a real clock: a slow disk never stalls
        the loop, and marks queued meanwhile share the next fsync)."""
        wanted = self.marks_queued if marks is None else marks
        if self.marks_synced >= wanted and self.commits_synced >= commits:
            return
        # one commit and fsync at a time: whoever waits meanwhile finds its marks covered
        # by it, or commits every mark queued so far for the next one (a group commit)
        async with self._lock():
            covered = self.marks_synced >= wanted and self.commits_synced >= commits
            if covered or self.closed:  # (close() synced everything)
                return
            self.flush()
            marks_now, commits_now = self.marks_committed, self.commits
            if self.fsync_s <= INLINE_FSYNC_MAX_S:
                self.fsync_s = _timed_sync_wal(self.path)
            else:
                self.fsync_s = await self.clock.run_blocking(
                    functools.partial(_timed_sync_wal, self.path)
                )
            self._synced(marks_now, commits_now)

    # ------------------------------------------------------------ life

    def _migrate(self) -> None:
        with self.write() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreSchemaError(
                    f"{self.path} has schema version {version}, newer than this wechat-sdk "
                    f"understands ({SCHEMA_VERSION}); upgrade wechat-sdk"
                )
            if version < 1:
                run_script(conn, _SCHEMA_V1)
            if version < 2:
                run_script(conn, _SCHEMA_V2)
            if version < 3:
                run_script(conn, _SCHEMA_V3)
            if version < 4:
                run_script(conn, _SCHEMA_V4)
            if version < 5:
                run_script(conn, _SCHEMA_V5)
            if version < 6:
                run_script(conn, _SCHEMA_V6)
            # (a version 2 file of an early build may still have them)
            run_script(conn, _DROPPED_INDEXES)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Commit and fsync what is queued, close the connection (idempotent)."""
        if self.closed:
            return
        self.closed = True
        committer = self._committer
        if committer is not None and not committer.get_loop().is_closed():
            committer.cancel()  # (what it waits to commit is committed here)
        try:
            self.flush()
            self.sync()
        finally:
            self.conn.close()


def storable(text: str) -> str:
    """``text``, with what UTF-8 cannot encode (a lone surrogate, e.g. half an emoji from
    a cut JSON escape) replaced by ``?``: queued writes must never fail at the commit."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _sync_wal(db_path: Path) -> None:
    """Flush the WAL's data to disk (nothing to do without one): ``fdatasync`` where there
    is one (what SQLite itself uses for its WAL), else ``fsync``. A descriptor of its own,
    so a close of the store meanwhile harms nothing."""
    try:
        fd = os.open(f"{db_path}-wal", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        (getattr(os, "fdatasync", None) or os.fsync)(fd)
    finally:
        os.close(fd)


def _timed_sync_wal(db_path: Path) -> float:
    """:func:`_sync_wal`, and the seconds it took."""
    started = time.perf_counter()  # (how long the disk takes: not the gateway's time)
    _sync_wal(db_path)
    return time.perf_counter() - started


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run DDL statements one by one (``executescript`` would commit the transaction;
    no statement may hold a ``;`` of its own)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


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
