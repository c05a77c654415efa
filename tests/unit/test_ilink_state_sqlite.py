"""The iLink state in the SQLite store's database: an earlier version's file of its own is
read in once, and one fsync makes a batch and the dedupe marks of its messages durable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from wechat_sdk.adapters.ilink.state import STATE_FILE, Delivered, PeerWindow, SqliteILinkState
from wechat_sdk.stores.sqlite import SqliteStore

T0 = 1_700_000_000.0

# the schema of accounts/<id>/ilink-state.sqlite3 as earlier builds of 0.1.0 wrote it
LEGACY_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE messages (
    id TEXT PRIMARY KEY, peer TEXT NOT NULL, from_user INTEGER NOT NULL, at REAL NOT NULL,
    raw TEXT, text TEXT NOT NULL DEFAULT ''
);
CREATE TABLE peers (
    peer TEXT PRIMARY KEY, context_token TEXT, user_at REAL,
    bot_sent INTEGER NOT NULL DEFAULT 0
);
"""


def legacy_file(path: Path, cursor: str) -> sqlite3.Connection:
    """An earlier version's state file, its rows still in its WAL (as a process killed
    leaves them): the connection stays open until the test closes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.executescript(LEGACY_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('cursor', ?)", (cursor,))
    db.execute("INSERT INTO messages VALUES ('m1', 'alice', 1, ?, '{}', 'hello')", (T0,))
    db.execute("INSERT INTO messages VALUES ('b1', 'alice', 0, ?, NULL, 'hi there')", (T0 + 1,))
    db.execute("INSERT INTO peers VALUES ('alice', 'ctx-a', ?, 1)", (T0,))
    db.commit()
    assert Path(f"{path}-wal").stat().st_size > 0
    return db


async def test_an_earlier_versions_state_file_is_read_in_once_and_removed(tmp_path: Path) -> None:
    legacy = tmp_path / "accounts" / "bot" / STATE_FILE
    legacy_file(legacy, "cursor-1").close()
    with SqliteStore(tmp_path / "wechat-sdk.sqlite3") as store:
        state = SqliteILinkState(store.database, "bot", legacy=legacy)
        assert await state.cursor() == "cursor-1"
        assert await state.context_token("alice") == "ctx-a"
        assert await state.window("alice") == PeerWindow(T0, 1)
        assert await state.recent(T0) == ["m1"]
        own = await state.entry("b1")
        assert own is not None and own.text == "hi there" and not own.from_user
        assert not list(legacy.parent.glob(f"{STATE_FILE}*"))  # (its -wal and -shm too)
        await state.record([], "cursor-2")
        # a crash between the import's commit and the file's removal: read in again, and
        # what the store has since is kept (the cursor never goes back)
        writer = legacy_file(legacy, "cursor-1")  # (read from its WAL this time)
        again = SqliteILinkState(store.database, "bot", legacy=legacy)
        writer.close()
        assert await again.cursor() == "cursor-2"
        assert await again.window("alice") == PeerWindow(T0, 1)
        # another account of the same store has a state of its own
        other = SqliteILinkState(store.database, "other")
        assert await other.cursor() == ""
        assert await other.windows() == {}


async def test_an_unreadable_earlier_state_file_is_set_aside_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    legacy = tmp_path / "accounts" / "bot" / STATE_FILE
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"not a database at all, a file some tool wrote over it" * 100)
    with SqliteStore(tmp_path / "wechat-sdk.sqlite3") as store:
        state = SqliteILinkState(store.database, "bot", legacy=legacy)
        assert await state.cursor() == ""  # the account starts (its server delivers again)
        await state.record([said(1)], "c1")  # and the database works as ever
        assert await state.cursor() == "c1"
        again = SqliteILinkState(store.database, "bot", legacy=legacy)  # no second warning
        assert await again.cursor() == "c1"
    assert not legacy.exists()
    assert legacy.with_name(STATE_FILE + ".unreadable").exists()  # kept for its owner
    (warning,) = [r for r in caplog.records if "ilink_state_unreadable" in r.getMessage()]
    assert warning.levelname == "WARNING" and "could not be read" in warning.getMessage()


def said(n: int) -> Delivered:
    return Delivered(f"m{n}", "alice", "{}", f"text {n}", True, "ctx", T0)


async def test_one_fsync_makes_a_batch_and_the_marks_of_its_messages_durable(
    tmp_path: Path, fsyncs: list[tuple[str, int]]
) -> None:
    with SqliteStore(tmp_path / "wechat-sdk.sqlite3") as store:
        state = SqliteILinkState(store.database, "bot")
        fsyncs.clear()
        await state.record([said(1), said(2)], "c1")
        store.dedupe.check_and_add("bot", "m1", T0, 3600)  # the gateway takes them in
        store.dedupe.check_and_add("bot", "m2", T0, 3600)
        await state.flush()  # the poll loop, before its next poll
        assert [name for name, _ in fsyncs] == [f"{store.path}-wal"]
        await store.marks_durable(store.mark_position())  # the replies: durable already
        assert len(fsyncs) == 1
        store.dedupe.check_and_add("bot", "m3", T0, 3600)  # a mark of its own: its fsync
        await store.marks_durable(store.mark_position())
        assert len(fsyncs) == 2
        await state.flush()  # (that one covered everything recorded too)
        assert len(fsyncs) == 2
        await state.sent("alice", "b1", "hi", T0)
        await state.flush()
        assert len(fsyncs) == 3
    with SqliteStore(tmp_path / "wechat-sdk.sqlite3") as store:
        again = SqliteILinkState(store.database, "bot")
        assert await again.cursor() == "c1"
        assert await again.window("alice") == PeerWindow(T0, 1)


# the tables as the build before copy keys made them in the store's database
TABLES_BEFORE_COPY_KEYS = """
CREATE TABLE ilink_cursors (
    channel TEXT NOT NULL, account_id TEXT NOT NULL, cursor TEXT NOT NULL,
    PRIMARY KEY (channel, account_id)
);
CREATE TABLE ilink_messages (
    channel TEXT NOT NULL, account_id TEXT NOT NULL, id TEXT NOT NULL, peer TEXT NOT NULL,
    from_user INTEGER NOT NULL, at REAL NOT NULL, raw TEXT, text TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (channel, account_id, id)
);
CREATE INDEX ilink_messages_at ON ilink_messages (channel, account_id, at);
CREATE TABLE ilink_peers (
    channel TEXT NOT NULL, account_id TEXT NOT NULL, peer TEXT NOT NULL,
    context_token TEXT, user_at REAL, bot_sent INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, account_id, peer)
);
"""


async def test_a_database_of_the_build_before_copy_keys_gets_them(tmp_path: Path) -> None:
    path = tmp_path / "wechat-sdk.sqlite3"
    with SqliteStore(path) as store:
        store.database.conn.executescript(TABLES_BEFORE_COPY_KEYS)
        store.database.conn.execute("INSERT INTO ilink_cursors VALUES ('wechat', 'bot', 'c0')")
    with SqliteStore(path) as store:
        state = SqliteILinkState(store.database, "bot")
        assert await state.cursor() == "c0"
        first = Delivered("m1", "alice", "{}", "hi", True, "t1", T0, copy_key="k1")
        copy = Delivered("m2", "alice", "{}", "hi", True, "t2", T0, copy_key="k1")
        assert (await state.record([first], "c1")).added == ["m1"]
        assert (await state.record([copy], "c2")).again == [("m2", "m1")]
