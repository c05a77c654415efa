"""What an iLink account must not forget across a crash: the ``getupdates`` cursor, the
messages it covers, each peer's ``context_token`` and reply window, and the bot's own
texts (a quote of them arrives cut: its text comes from here).

:class:`ILinkState` is the port (a Redis-backed one could replace the SQLite one);
:class:`SqliteILinkState` keeps it in ``accounts/<id>/ilink-state.sqlite3`` (owner-only),
each batch in one transaction committed before the adapter emits any of its events, and
made durable on disk (the WAL fsynced) before the next poll moves the server's cursor. See
:mod:`wechat_sdk.adapters.ilink` for why that is enough.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from wechat_sdk.clock import Clock

__all__ = ["STATE_FILE", "Delivered", "ILinkState", "PeerWindow", "SqliteILinkState", "Stored"]

STATE_FILE = "ilink-state.sqlite3"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Delivered:
    """One message of a ``getupdates`` batch, as the state keeps it."""

    id: str
    peer: str
    raw: str  # the message's JSON as delivered (message(id) and download() read it)
    text: str  # its text as the agent reads it (a later quote of it shows this)
    from_user: bool
    context_token: str | None
    at: float  # when it was said (the window opens then)


@dataclass(frozen=True, slots=True)
class Stored:
    """A recorded message: a peer's (its JSON) or the bot's own (its text)."""

    id: str
    peer: str
    from_user: bool
    at: float
    raw: str | None
    text: str


@dataclass(frozen=True, slots=True)
class PeerWindow:
    """A peer's reply window as counted: their last message, bot messages since."""

    user_at: float | None
    bot_sent: int


class ILinkState(Protocol):
    """The durable state of one iLink account."""

    async def cursor(self) -> str:
        """The last ``get_updates_buf`` whose messages are all recorded ("" at first)."""
        ...

    async def record(self, batch: Sequence[Delivered], cursor: str | None) -> list[str]:
        """Record a batch and its cursor together (one transaction; durable against a
        crash of the process, and against a power loss once :meth:`flush` returned); the
        ids it added, in order (an id already recorded, or twice in the batch, is a
        duplicate: left out)."""
        ...

    async def flush(self) -> None:
        """Make everything recorded so far durable on disk (before the next poll moves
        the server's cursor)."""
        ...

    async def recent(self, since: float) -> list[str]:
        """Ids of user messages said at ``since`` or later, oldest first (re-emitted at a
        start: the gateway's dedupe drops those it already handled)."""
        ...

    async def entry(self, message_id: str) -> Stored | None:
        """A recorded message (the bot's own included), or None."""
        ...

    async def windows(self) -> dict[str, PeerWindow]:
        """Every peer's window as counted (read once at a start)."""
        ...

    async def context_token(self, peer: str) -> str | None: ...

    async def window(self, peer: str) -> PeerWindow: ...

    async def sent(self, peer: str, message_id: str, text: str, at: float) -> None:
        """The bot sent a message to ``peer``: one less in the window; its text kept."""
        ...

    async def prune(self, before: float) -> None:
        """Forget messages recorded before ``before`` (peers' tokens and windows stay)."""
        ...

    async def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    peer TEXT NOT NULL,
    from_user INTEGER NOT NULL,
    at REAL NOT NULL,
    raw TEXT,
    text TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS messages_at ON messages (at);
CREATE TABLE IF NOT EXISTS peers (
    peer TEXT PRIMARY KEY,
    context_token TEXT,
    user_at REAL,
    bot_sent INTEGER NOT NULL DEFAULT 0
);
"""


class SqliteILinkState:
    """:class:`ILinkState` in one SQLite file (0600) under the account's directory."""

    def __init__(self, account_dir: Path, clock: Clock) -> None:
        self.path = account_dir / STATE_FILE
        self.clock = clock
        account_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():  # owner-only from its first byte (SQLite's own files
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))  # follow it)
        self.path.chmod(0o600)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # commits append to the WAL without an fsync (they survive a crash of the process);
        # flush() fsyncs the WAL, off the lock, while the gateway works on the batch
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._wal = self.path.with_name(self.path.name + "-wal")

    async def _run(self, fn: Callable[[], T]) -> T:
        # on the event loop: a statement or a commit without fsync is tens of
        # microseconds, less than the hop to a thread and back it would otherwise take
        # (and the loop's one thread keeps the connection to itself); the fsync, which
        # waits for the disk, is flush()'s, in a worker thread
        return fn()

    async def cursor(self) -> str:
        def read() -> str:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
            return str(row[0]) if row else ""

        return await self._run(read)

    async def record(self, batch: Sequence[Delivered], cursor: str | None) -> list[str]:
        def write() -> list[str]:
            added: list[str] = []
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for d in batch:
                    cur = db.execute(
                        "INSERT OR IGNORE INTO messages (id, peer, from_user, at, raw, text) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (d.id, d.peer, int(d.from_user), d.at, d.raw, d.text),
                    )
                    if cur.rowcount == 0:
                        continue  # delivered before: a duplicate
                    added.append(d.id)
                    if not d.from_user:
                        continue
                    db.execute(
                        "INSERT INTO peers (peer, context_token, user_at, bot_sent) "
                        "VALUES (?, ?, ?, 0) ON CONFLICT (peer) DO UPDATE SET "
                        "context_token = COALESCE(excluded.context_token, context_token), "
                        "user_at = MAX(COALESCE(user_at, 0), excluded.user_at), "
                        "bot_sent = CASE WHEN excluded.user_at >= COALESCE(user_at, 0) "
                        "THEN 0 ELSE bot_sent END",
                        (d.peer, d.context_token, d.at),
                    )
                if cursor:
                    db.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('cursor', ?)", (cursor,)
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return added

        return await self._run(write)

    async def flush(self) -> None:
        def sync() -> None:
            try:
                fd = os.open(self._wal, os.O_RDONLY)
            except FileNotFoundError:  # nothing written since the last checkpoint
                return
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        await self.clock.run_blocking(sync)

    async def recent(self, since: float) -> list[str]:
        def read() -> list[str]:
            rows = self._db.execute(
                "SELECT id FROM messages WHERE from_user = 1 AND at >= ? ORDER BY at, rowid",
                (since,),
            ).fetchall()
            return [str(r[0]) for r in rows]

        return await self._run(read)

    async def entry(self, message_id: str) -> Stored | None:
        def read() -> Stored | None:
            row = self._db.execute(
                "SELECT peer, from_user, at, raw, text FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            if row is None:
                return None
            return Stored(message_id, str(row[0]), bool(row[1]), float(row[2]), row[3], str(row[4]))

        return await self._run(read)

    async def windows(self) -> dict[str, PeerWindow]:
        def read() -> dict[str, PeerWindow]:
            rows = self._db.execute("SELECT peer, user_at, bot_sent FROM peers").fetchall()
            return {
                str(r[0]): PeerWindow(None if r[1] is None else float(r[1]), int(r[2]))
                for r in rows
            }

        return await self._run(read)

    async def context_token(self, peer: str) -> str | None:
        def read() -> str | None:
            row = self._db.execute(
                "SELECT context_token FROM peers WHERE peer = ?", (peer,)
            ).fetchone()
            return None if row is None or row[0] is None else str(row[0])

        return await self._run(read)

    async def window(self, peer: str) -> PeerWindow:
        def read() -> PeerWindow:
            row = self._db.execute(
                "SELECT user_at, bot_sent FROM peers WHERE peer = ?", (peer,)
            ).fetchone()
            if row is None:
                return PeerWindow(None, 0)
            return PeerWindow(None if row[0] is None else float(row[0]), int(row[1]))

        return await self._run(read)

    async def sent(self, peer: str, message_id: str, text: str, at: float) -> None:
        def write() -> None:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO peers (peer, bot_sent) VALUES (?, 1) "
                    "ON CONFLICT (peer) DO UPDATE SET bot_sent = bot_sent + 1",
                    (peer,),
                )
                db.execute(
                    "INSERT OR IGNORE INTO messages (id, peer, from_user, at, raw, text) "
                    "VALUES (?, ?, 0, ?, NULL, ?)",
                    (message_id, peer, at, text),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        await self._run(write)

    async def prune(self, before: float) -> None:
        await self._run(lambda: self._db.execute("DELETE FROM messages WHERE at < ?", (before,)))

    async def close(self) -> None:
        await self._run(self._db.close)
