"""What an iLink account must not forget across a crash: the ``getupdates`` cursor, the
messages it covers (and their copy keys: a copy under a new id is known, see
:mod:`.copies`), each peer's ``context_token`` and reply window, and the bot's own texts
(a quote of them arrives cut: its text comes from here).

:class:`ILinkState` is the port (:mod:`.redis_state` keeps it on the store's Redis);
:class:`SqliteILinkState` keeps it in the store's SQLite database (owner-only), each batch
in one transaction committed before the adapter emits any of its events, and made durable
on disk (the WAL fsynced) before the next poll moves the server's cursor, by the same
fsync as the dedupe marks the gateway queued for its messages meanwhile. See
:mod:`wechat_sdk.adapters.ilink` for why that is enough.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wechat_sdk.clock import Clock
from wechat_sdk.stores.base import CHANNEL
from wechat_sdk.stores.sqlite.db import Database, run_script

__all__ = [
    "OWN_FILE",
    "STATE_FILE",
    "Delivered",
    "ILinkState",
    "PeerWindow",
    "Recorded",
    "SqliteILinkState",
    "Stored",
]

log = logging.getLogger("wechat_sdk.adapters.ilink")

#: an account's file of versions before the state moved into the store's database
STATE_FILE = "ilink-state.sqlite3"
#: the state's own database file when the gateway's store is not SQLite's
OWN_FILE = "ilink.sqlite3"


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
    in_group: bool = False  # said in a group (iLink bots are in none: it is not answered)
    #: what a copy of it under a new id has alike (:func:`.copies.copy_key`; None: never
    #: taken for a copy)
    copy_key: str | None = None

    @property
    def opens_window(self) -> bool:
        """Whether it renews its peer's reply window: a user's message in their direct
        chat does; a group's is not that chat's (nor the bot's own)."""
        return self.from_user and not self.in_group


@dataclass(frozen=True, slots=True)
class Recorded:
    """What :meth:`ILinkState.record` made of a batch."""

    #: the ids recorded now, in order
    added: list[str]
    #: each message of the batch recorded before (or earlier in the batch), in order: its
    #: id as delivered, and the id it is recorded under (the same id delivered again, or
    #: the original of a copy under a new id)
    again: list[tuple[str, str]]


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

    async def record(self, batch: Sequence[Delivered], cursor: str | None) -> Recorded:
        """Record a batch and its cursor together (one transaction; durable against a
        crash of the process, and against a power loss once :meth:`flush` returned). A
        message recorded before is not recorded again: an id already recorded (or twice in
        the batch), or a copy under a new id (its ``copy_key`` that of a recorded message
        of another id); only its ``context_token``, the newest the server gave, is its
        peer's latest (its window stays as counted)."""
        ...

    async def flush(self) -> None:
        """Make everything recorded so far durable on disk (before the next poll moves
        the server's cursor; the adapter calls it once the gateway has taken the batch's
        events in)."""
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
        """Forget messages recorded before ``before`` (and their copy keys), and the peers
        (their context token, their window) whose last message is older: their window
        closed long ago, and their next message brings a new token."""
        ...

    async def forget_all(self) -> None:
        """Forget the cursor, every message (and copy key) and every peer (their context
        tokens and windows): the configured server is another one now, and none of it is
        its."""
        ...

    async def close(self) -> None: ...


#: the tables, in the store's database file beside its own (one per kind of row, every
#: account's rows in them, keyed by the channel and the account)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS ilink_cursors (
    channel    TEXT NOT NULL,
    account_id TEXT NOT NULL,
    cursor     TEXT NOT NULL,
    PRIMARY KEY (channel, account_id)
);
CREATE TABLE IF NOT EXISTS ilink_messages (
    channel    TEXT NOT NULL,
    account_id TEXT NOT NULL,
    id         TEXT NOT NULL,
    peer       TEXT NOT NULL,
    from_user  INTEGER NOT NULL,
    at         REAL NOT NULL,
    raw        TEXT,
    text       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (channel, account_id, id)
);
CREATE INDEX IF NOT EXISTS ilink_messages_at ON ilink_messages (channel, account_id, at);
CREATE TABLE IF NOT EXISTS ilink_peers (
    channel       TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    peer          TEXT NOT NULL,
    context_token TEXT,
    user_at       REAL,
    bot_sent      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, account_id, peer)
);
CREATE TABLE IF NOT EXISTS ilink_copy_keys (
    channel    TEXT NOT NULL,
    account_id TEXT NOT NULL,
    copy_key   TEXT NOT NULL,
    id         TEXT NOT NULL,
    at         REAL NOT NULL,
    PRIMARY KEY (channel, account_id, copy_key)
);
CREATE INDEX IF NOT EXISTS ilink_copy_keys_at ON ilink_copy_keys (channel, account_id, at);
"""
#: the schema's last object: once it is there, the schema is (a database of an earlier
#: build gets what it lacks)
_LAST_MADE = "ilink_copy_keys_at"

_KEY = "channel = ? AND account_id = ?"


class SqliteILinkState:
    """:class:`ILinkState` in the store's SQLite database (:class:`Database`), beside the
    dedupe marks: one WAL, so one fsync can make a batch and the marks of its messages
    durable together.

    ``legacy`` is the account's file of an earlier version
    (``accounts/<id>/ilink-state.sqlite3``): read into the database at the first open,
    then removed.
    """

    def __init__(
        self, db: Database, account_id: str, *, channel: str = CHANNEL, legacy: Path | None = None
    ) -> None:
        self._db = db
        self._key = (channel, account_id)
        self._owned = False
        made = db.read("SELECT 1 FROM sqlite_master WHERE name = ?", (_LAST_MADE,))
        if not made:  # (the first account: a thousand others pay no fsync for it)
            with db.write() as conn:
                run_script(conn, _SCHEMA)
        if legacy is not None and legacy.exists():
            try:
                self._import(legacy)
            except sqlite3.DatabaseError as exc:  # not a database, or not one of ours
                aside = legacy.with_name(legacy.name + ".unreadable")
                log.warning(
                    "the iLink state of account %s in %s could not be read (%s): set aside "
                    "as %s; the account starts without it (the server delivers again what "
                    "it had not handed over) reason=ilink_state_unreadable",
                    account_id,
                    legacy,
                    exc,
                    aside.name,
                )
                legacy.replace(aside)

    @classmethod
    def in_dir(cls, account_dir: Path, account_id: str, clock: Clock) -> SqliteILinkState:
        """The state in a database of its own, ``account_dir/ilink.sqlite3`` (for a gateway
        whose store is not SQLite's); closed with the state."""
        db = Database(account_dir / OWN_FILE, clock)
        try:
            state = cls(db, account_id, legacy=account_dir / STATE_FILE)
        except BaseException:
            db.close()
            raise
        state._owned = True
        return state

    def _import(self, legacy: Path) -> None:
        """Read an earlier version's file in (what is here already wins: a crash between
        this commit and the file's removal imports it again, harmlessly), then remove it."""
        conn = self._db.conn
        conn.execute("ATTACH DATABASE ? AS legacy", (str(legacy),))
        try:
            with self._db.write():
                conn.execute(
                    "INSERT OR IGNORE INTO ilink_cursors (channel, account_id, cursor) "
                    "SELECT ?, ?, value FROM legacy.meta WHERE key = 'cursor'",
                    self._key,
                )
                conn.execute(
                    "INSERT OR IGNORE INTO ilink_messages "
                    "(channel, account_id, id, peer, from_user, at, raw, text) "
                    "SELECT ?, ?, id, peer, from_user, at, raw, text FROM legacy.messages",
                    self._key,
                )
                conn.execute(
                    "INSERT OR IGNORE INTO ilink_peers "
                    "(channel, account_id, peer, context_token, user_at, bot_sent) "
                    "SELECT ?, ?, peer, context_token, user_at, bot_sent FROM legacy.peers",
                    self._key,
                )
        finally:
            conn.execute("DETACH DATABASE legacy")
        for suffix in ("-wal", "-shm", ""):  # (the file last: while it is there, its
            legacy.with_name(legacy.name + suffix).unlink(missing_ok=True)  # WAL is read)

    async def cursor(self) -> str:
        row = self._db.conn.execute(
            f"SELECT cursor FROM ilink_cursors WHERE {_KEY}", self._key
        ).fetchone()
        return str(row[0]) if row else ""

    async def record(self, batch: Sequence[Delivered], cursor: str | None) -> Recorded:
        added: list[str] = []
        again: list[tuple[str, str]] = []
        key = self._key
        with self._db.transaction() as db:
            for d in batch:
                original = self._original(db, d)
                if original is None:
                    cur = db.execute(
                        "INSERT OR IGNORE INTO ilink_messages "
                        "(channel, account_id, id, peer, from_user, at, raw, text) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (*key, d.id, d.peer, int(d.from_user), d.at, d.raw, d.text),
                    )
                    original = None if cur.rowcount else d.id  # (0: delivered before)
                if original is not None:
                    again.append((d.id, original))
                    if d.opens_window and d.context_token is not None:
                        db.execute(  # (its peer's row is there: its original made it)
                            f"UPDATE ilink_peers SET context_token = ? WHERE {_KEY} AND peer = ?",
                            (d.context_token, *key, d.peer),
                        )
                    continue
                added.append(d.id)
                if d.copy_key is not None:
                    db.execute(
                        "INSERT OR IGNORE INTO ilink_copy_keys "
                        "(channel, account_id, copy_key, id, at) VALUES (?, ?, ?, ?, ?)",
                        (*key, d.copy_key, d.id, d.at),
                    )
                if not d.opens_window:
                    continue
                db.execute(
                    "INSERT INTO ilink_peers "
                    "(channel, account_id, peer, context_token, user_at, bot_sent) "
                    "VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (channel, account_id, peer) "
                    "DO UPDATE SET "
                    "context_token = COALESCE(excluded.context_token, context_token), "
                    "user_at = MAX(COALESCE(user_at, 0), excluded.user_at), "
                    "bot_sent = CASE WHEN excluded.user_at >= COALESCE(user_at, 0) "
                    "THEN 0 ELSE bot_sent END",
                    (*key, d.peer, d.context_token, d.at),
                )
            if cursor:
                db.execute(
                    "INSERT OR REPLACE INTO ilink_cursors (channel, account_id, cursor) "
                    "VALUES (?, ?, ?)",
                    (*key, cursor),
                )
        return Recorded(added, again)

    def _original(self, db: sqlite3.Connection, d: Delivered) -> str | None:
        """The id of the recorded message ``d`` is a copy of, under another id; None if
        it is none's."""
        if d.copy_key is None:
            return None
        row = db.execute(
            f"SELECT id FROM ilink_copy_keys WHERE {_KEY} AND copy_key = ?",
            (*self._key, d.copy_key),
        ).fetchone()
        return None if row is None or row[0] == d.id else str(row[0])

    async def flush(self) -> None:
        # with every dedupe mark queued so far: the adapter calls it once the gateway has
        # taken the batch in, so one fsync covers the batch and its messages' marks (the
        # replies then find them durable)
        await self._db.durable(None, self._db.commits)

    async def recent(self, since: float) -> list[str]:
        rows = self._db.conn.execute(
            f"SELECT id FROM ilink_messages WHERE {_KEY} AND from_user = 1 AND at >= ? "
            "ORDER BY at, rowid",
            (*self._key, since),
        ).fetchall()
        return [str(r[0]) for r in rows]

    async def entry(self, message_id: str) -> Stored | None:
        row = self._db.conn.execute(
            f"SELECT peer, from_user, at, raw, text FROM ilink_messages WHERE {_KEY} AND id = ?",
            (*self._key, message_id),
        ).fetchone()
        if row is None:
            return None
        return Stored(message_id, str(row[0]), bool(row[1]), float(row[2]), row[3], str(row[4]))

    async def windows(self) -> dict[str, PeerWindow]:
        rows = self._db.conn.execute(
            f"SELECT peer, user_at, bot_sent FROM ilink_peers WHERE {_KEY}", self._key
        ).fetchall()
        return {str(r[0]): _window(r[1], r[2]) for r in rows}

    async def context_token(self, peer: str) -> str | None:
        row = self._db.conn.execute(
            f"SELECT context_token FROM ilink_peers WHERE {_KEY} AND peer = ?", (*self._key, peer)
        ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    async def window(self, peer: str) -> PeerWindow:
        row = self._db.conn.execute(
            f"SELECT user_at, bot_sent FROM ilink_peers WHERE {_KEY} AND peer = ?",
            (*self._key, peer),
        ).fetchone()
        return PeerWindow(None, 0) if row is None else _window(row[0], row[1])

    async def sent(self, peer: str, message_id: str, text: str, at: float) -> None:
        key = self._key
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO ilink_peers (channel, account_id, peer, bot_sent) "
                "VALUES (?, ?, ?, 1) ON CONFLICT (channel, account_id, peer) "
                "DO UPDATE SET bot_sent = bot_sent + 1",
                (*key, peer),
            )
            db.execute(
                "INSERT OR IGNORE INTO ilink_messages "
                "(channel, account_id, id, peer, from_user, at, raw, text) "
                "VALUES (?, ?, ?, ?, 0, ?, NULL, ?)",
                (*key, message_id, peer, at, text),
            )

    async def prune(self, before: float) -> None:
        with self._db.transaction() as db:
            for table in ("ilink_messages", "ilink_copy_keys"):
                db.execute(f"DELETE FROM {table} WHERE {_KEY} AND at < ?", (*self._key, before))
            db.execute(
                f"DELETE FROM ilink_peers WHERE {_KEY} AND user_at < ?", (*self._key, before)
            )

    async def forget_all(self) -> None:
        with self._db.transaction() as db:
            for table in ("ilink_cursors", "ilink_messages", "ilink_peers", "ilink_copy_keys"):
                db.execute(f"DELETE FROM {table} WHERE {_KEY}", self._key)

    async def close(self) -> None:
        if self._owned:
            self._db.close()


def _window(user_at: object, bot_sent: object) -> PeerWindow:
    return PeerWindow(None if user_at is None else float(str(user_at)), int(str(bot_sent)))
