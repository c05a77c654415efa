"""SQLite store specifics: file modes, WAL, durability, two processes, kill -9, the
schema migration and the outbox's immediate commits."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wechat_sdk
from wechat_sdk.agent import HistoryEntry
from wechat_sdk.clock import VirtualClock
from wechat_sdk.stores import (
    SCHEMA_VERSION,
    MemoryStore,
    OutboxItem,
    PairingRequest,
    SqliteStore,
    StoreSchemaError,
)

T0 = 1_700_000_000.0


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def req(code: str, sender: str, account: str = "default") -> PairingRequest:
    return PairingRequest(code, account, sender, sender.title(), T0, T0 + 3600)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "wechat-sdk.sqlite3"


def test_new_file_0600_in_new_dir_0700(db_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with SqliteStore(db_path) as s:
            s.pairing.add_approved("default", "wxid_a", T0)
            assert mode(db_path.parent) == 0o700
            assert mode(db_path) == 0o600
            wal = db_path.with_name(db_path.name + "-wal")
            assert wal.exists()
            assert mode(wal) & 0o077 == 0
    finally:
        os.umask(old)


def test_existing_loose_modes_are_tightened(db_path: Path) -> None:
    db_path.parent.mkdir(mode=0o755)
    os.chmod(db_path.parent, 0o755)
    db_path.touch()
    os.chmod(db_path, 0o644)
    SqliteStore(db_path).close()
    assert mode(db_path.parent) == 0o700
    assert mode(db_path) == 0o600


def test_wal_normal_sync_and_schema_version(db_path: Path) -> None:
    with SqliteStore(db_path) as s:
        # NORMAL: commits do not fsync; the store fsyncs the WAL itself (tests below)
        assert s._db.conn.execute("PRAGMA synchronous").fetchone()[0] == 1
        assert s._db.conn.isolation_level is None  # autocommit: no lingering read txn
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        raw.close()


def test_newer_schema_is_refused(db_path: Path) -> None:
    SqliteStore(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreSchemaError, match="upgrade wechat-sdk"):
        SqliteStore(db_path)


def test_data_survives_reopen(db_path: Path) -> None:
    e = HistoryEntry("user", "wxid_a", "A", "hello", T0, "m1")
    with SqliteStore(db_path) as s:
        s.pairing.add_request(req("ABCD2345", "wxid_b"))
        s.pairing.add_approved("default", "wxid_a", T0)
        s.history.append("default", "wxid_a", e, 10)
        assert s.dedupe.check_and_add("default", "m1", T0, 3600) is False
    with SqliteStore(db_path) as s:
        assert s.pairing.get_request_by_code("abcd2345") == req("ABCD2345", "wxid_b")
        assert s.pairing.is_approved("default", "wxid_a")
        assert s.history.get("default", "wxid_a") == [e]
        assert s.dedupe.check_and_add("default", "m1", T0 + 1, 3600) is True


def test_in_state_dir_uses_default_name(tmp_path: Path) -> None:
    with SqliteStore.in_state_dir(tmp_path / "st") as s:
        assert s.path == tmp_path / "st" / "wechat-sdk.sqlite3"
    assert (tmp_path / "st" / "wechat-sdk.sqlite3").exists()


def test_second_store_sees_changes_at_once(db_path: Path) -> None:
    gateway = SqliteStore(db_path)
    cli = SqliteStore(db_path)
    try:
        gateway.pairing.add_request(req("ABCD2345", "wxid_b"))
        # The CLI sees the gateway's request...
        assert [r.code for r in cli.pairing.list_requests()] == ["ABCD2345"]
        assert not gateway.pairing.is_approved("default", "wxid_b")  # a read before the write
        # ...approves it, and the gateway sees the approval without reopening.
        assert cli.pairing.approve_request("abcd2345", T0 + 1) is not None
        assert gateway.pairing.is_approved("default", "wxid_b")
        assert gateway.pairing.list_requests() == []
        cli.pairing.remove_approved("default", "wxid_b")
        assert not gateway.pairing.is_approved("default", "wxid_b")
    finally:
        gateway.close()
        cli.close()


_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from wechat_sdk.stores import PairingRequest, SqliteStore

    path, run = Path(sys.argv[1]), sys.argv[2]
    store = SqliteStore(path)
    for i in range(1_000_000):
        code = f"R{run}X{i:06d}"
        sender = f"wxid_{run}_{i}"
        store.pairing.add_request(
            PairingRequest(code, "default", sender, "S", 1000.0, 1000.0 + 3600)
        )
        store.pairing.approve_request(code, 1001.0)
        sys.stdout.write(code + "\\n")
        sys.stdout.flush()
    """
)


def _child_env() -> dict[str, str]:
    root = str(Path(wechat_sdk.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


@pytest.mark.slow
def test_kill_9_mid_approvals_loses_nothing_committed(db_path: Path) -> None:
    rng = random.Random()
    SqliteStore(db_path).close()
    reported: list[str] = []
    for run in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(db_path), str(run)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_child_env(),
        )
        assert proc.stdout is not None
        target = rng.randint(5, 60)
        seen = 0
        try:
            while seen < target:
                line = proc.stdout.readline()
                assert line, f"child exited early: {proc.stderr.read() if proc.stderr else ''}"
                reported.append(line.strip())
                seen += 1
            # Let it run on for a random moment, then kill it mid-flight.
            for _ in range(rng.randint(0, 40)):
                line = proc.stdout.readline()
                if not line:
                    break
                reported.append(line.strip())
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            rest, _ = proc.communicate(timeout=30)
        reported.extend(x.strip() for x in rest.splitlines() if x.strip())
        assert proc.returncode == -signal.SIGKILL

        with SqliteStore(db_path) as s:
            for code in reported:
                run_s, _, i = code[1:].partition("X")
                sender = f"wxid_{run_s}_{int(i)}"
                assert s.pairing.is_approved("default", sender), (run, code)
                assert s.pairing.get_request_by_code(code) is None, (run, code)
            for pending in s.pairing.list_requests():
                assert not s.pairing.is_approved("default", pending.sender_id), pending
            integrity = s._db.conn.execute("PRAGMA integrity_check").fetchall()
            assert integrity == [("ok",)]
            # A request stranded by the kill is still usable.
            for pending in s.pairing.list_requests():
                assert s.pairing.approve_request(pending.code, 1002.0) is not None
    assert len(reported) >= 15


# ---------------------------------------------------------------- group commit


def committed_marks(db_path: Path) -> set[str]:
    """Dedupe marks another connection (a crash survivor) would see."""
    raw = sqlite3.connect(db_path)
    try:
        return {r[0] for r in raw.execute("SELECT message_id FROM dedupe")}
    finally:
        raw.close()


def committed_history(db_path: Path) -> list[str]:
    raw = sqlite3.connect(db_path)
    try:
        return [r[0] for r in raw.execute("SELECT text FROM history_entries ORDER BY seq")]
    finally:
        raw.close()


def test_without_an_event_loop_every_write_commits_at_once(db_path: Path) -> None:
    with SqliteStore(db_path) as s:
        s.dedupe.check_and_add("default", "m1", T0, 3600)
        s.history.append("default", "dm:a", HistoryEntry("user", "a", "A", "hi", T0, "m1"), 10)
        assert committed_marks(db_path) == {"m1"}
        assert committed_history(db_path) == ["hi"]


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not committed in time"
        await asyncio.sleep(0.001)


async def test_queued_writes_commit_within_the_commit_delay(db_path: Path) -> None:
    import asyncio

    with SqliteStore(db_path) as s:
        s.history.append("default", "dm:a", HistoryEntry("user", "a", "A", "hi", T0, "m1"), 10)
        s.dedupe.check_and_add("default", "m1", T0, 3600)
        # this store answers from memory at once; another connection sees nothing yet
        assert s.history.get("default", "dm:a")[0].text == "hi"
        assert s.dedupe.check_and_add("default", "m1", T0 + 1, 3600) is True
        await asyncio.sleep(0)
        assert committed_marks(db_path) == set()  # not one commit per loop turn
        await until(lambda: committed_marks(db_path) == {"m1"})  # within COMMIT_DELAY_S
        assert committed_history(db_path) == ["hi"]


async def test_on_a_virtual_clock_queued_writes_commit_as_its_time_passes(
    db_path: Path,
) -> None:
    """The commit delay is the clock's time (virtual time moves only when the world moves
    it), and waiting for it keeps no world busy."""
    from wechat_sdk.stores.sqlite.db import COMMIT_DELAY_S

    clock = VirtualClock()
    with SqliteStore(db_path, clock=clock) as s:
        s.history.append("default", "dm:a", HistoryEntry("user", "a", "A", "hi", T0, "m1"), 10)
        started = clock.now()
        await clock.run_until_idle()
        assert clock.now() == started  # nothing else to do: time did not move for it
        assert committed_history(db_path) == []
        await clock.advance(COMMIT_DELAY_S)
        assert committed_history(db_path) == ["hi"]


async def test_marks_durable_upto_a_position_commits_only_when_that_mark_is_not_durable(
    db_path: Path,
) -> None:
    commits: list[str] = []
    with SqliteStore(db_path) as s:
        s._db.conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
        s.dedupe.check_and_add("default", "m1", T0, 3600)
        first = s.mark_position()
        s.dedupe.check_and_add("default", "m2", T0, 3600)
        await s.marks_durable(first)  # m1's reply: commits (m2 rides along)
        assert committed_marks(db_path) == {"m1", "m2"}
        assert len(commits) == 1
        s.dedupe.check_and_add("default", "m3", T0, 3600)
        await s.marks_durable(first)  # m1 (and m2) durable: m3 does not force a commit
        await s.marks_durable(first + 1)
        assert len(commits) == 1
        assert committed_marks(db_path) == {"m1", "m2"}
        await s.marks_durable(s.mark_position())  # m3's reply
        assert committed_marks(db_path) == {"m1", "m2", "m3"}
        s.dedupe.check_and_add("default", "m4", T0, 3600)
        await s.marks_durable(None)  # no position known: every mark so far
        assert committed_marks(db_path) == {"m1", "m2", "m3", "m4"}
        assert len(commits) == 3


def test_a_pairing_write_is_fsynced_before_the_call_returns(
    db_path: Path, fsyncs: list[tuple[str, int]]
) -> None:
    with SqliteStore(db_path) as s:
        fsyncs.clear()
        s.pairing.add_approved("default", "wxid_a", T0)
        assert [name for name, _ in fsyncs] == [f"{db_path}-wal"]


async def test_on_a_virtual_clock_marks_durable_commits_and_fsyncs_in_this_thread(
    db_path: Path, fsyncs: list[tuple[str, int]]
) -> None:
    """Virtual time cannot see a thread's work: the simulator's world would move on
    while a send waits for it."""
    import threading

    with SqliteStore(db_path, clock=VirtualClock()) as s:
        fsyncs.clear()
        s.dedupe.check_and_add("default", "m1", T0, 3600)
        await s.marks_durable(s.mark_position())
        assert committed_marks(db_path) == {"m1"}
        assert fsyncs == [(f"{db_path}-wal", threading.get_ident())]
        await s.marks_durable(s.mark_position())  # durable already: no second fsync
        assert len(fsyncs) == 1


async def test_marks_durable_fsyncs_in_a_thread_shared_and_the_loop_goes_on(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import threading
    import time

    calls: list[int] = []
    real = os.fdatasync

    def slow_fsync(fd: int) -> None:
        calls.append(threading.get_ident())
        time.sleep(0.2)  # a slow disk
        real(fd)

    with SqliteStore(db_path) as s:
        monkeypatch.setattr(os, "fdatasync", slow_fsync)
        s.dedupe.check_and_add("default", "m1", T0, 3600)
        s.dedupe.check_and_add("default", "m2", T0, 3600)
        ticks = 0

        async def meanwhile() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        other = asyncio.ensure_future(meanwhile())
        # three senders at once: one commit, one fsync, all wait for it
        await asyncio.gather(*(s.marks_durable(s.mark_position()) for _ in range(3)))
        other.cancel()
        assert committed_marks(db_path) == {"m1", "m2"}
        assert len(calls) == 1
        assert calls[0] != threading.get_ident()  # not on the event loop's thread
        assert ticks >= 5  # the loop ran on during the 0.2 s fsync
        await s.marks_durable(s.mark_position())  # durable already: returns at once
        assert len(calls) == 1
        s.dedupe.check_and_add("default", "m3", T0, 3600)
        await s.marks_durable(None)
        assert len(calls) == 2
        assert committed_marks(db_path) == {"m1", "m2", "m3"}


async def test_marks_queued_during_an_fsync_share_one_more_fsync_after_it(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import threading

    release = threading.Event()
    fsynced: list[int] = []
    real = os.fdatasync

    def held_fsync(fd: int) -> None:
        release.wait(5)
        real(fd)
        fsynced.append(1)

    with SqliteStore(db_path) as s:
        monkeypatch.setattr(os, "fdatasync", held_fsync)
        s.dedupe.check_and_add("default", "m1", T0, 3600)
        first = asyncio.ensure_future(s.marks_durable(s.mark_position()))
        covered = asyncio.ensure_future(s.marks_durable(s.mark_position()))  # m1's too
        await asyncio.sleep(0.05)  # m1 committed, its fsync held
        later = []
        for n in range(2, 6):  # four more replies, each with its own new mark
            s.dedupe.check_and_add("default", f"m{n}", T0, 3600)
            later.append(asyncio.ensure_future(s.marks_durable(s.mark_position())))
        await asyncio.sleep(0.05)
        assert not any(t.done() for t in [first, covered, *later])  # none sent yet
        assert fsynced == []
        release.set()
        await asyncio.wait_for(asyncio.gather(first, covered, *later), 5)
        assert len(fsynced) == 2  # then one more fsync for all four
        assert committed_marks(db_path) == {f"m{n}" for n in range(1, 6)}


async def test_a_cancelled_waiting_send_leaves_the_others_and_the_fsync_alone(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import threading

    release = threading.Event()
    real = os.fdatasync

    def held_fsync(fd: int) -> None:
        release.wait(5)
        real(fd)

    with SqliteStore(db_path) as s:
        monkeypatch.setattr(os, "fdatasync", held_fsync)
        s.dedupe.check_and_add("default", "m1", T0, 3600)
        one = asyncio.ensure_future(s.marks_durable(s.mark_position()))
        other = asyncio.ensure_future(s.marks_durable(s.mark_position()))
        await asyncio.sleep(0.05)
        one.cancel()  # a reply cut by a stop
        release.set()
        await asyncio.wait_for(other, 5)
        assert one.cancelled()
        assert committed_marks(db_path) == {"m1"}


async def test_a_failed_fsync_reaches_every_waiting_send(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    with SqliteStore(db_path) as s:
        monkeypatch.setattr(os, "fdatasync", broken)
        s.dedupe.check_and_add("default", "m1", T0, 3600)
        waiting = [asyncio.ensure_future(s.marks_durable(None)) for _ in range(3)]
        results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 5)
        assert all(isinstance(r, OSError) for r in results)  # none is sent
        monkeypatch.undo()
        await asyncio.wait_for(s.marks_durable(None), 5)  # the disk is back: this one works


async def test_pairing_writes_and_close_commit_the_group_first(db_path: Path) -> None:
    s = SqliteStore(db_path)
    s.dedupe.check_and_add("default", "m1", T0, 3600)
    s.pairing.add_approved("default", "wxid_a", T0)  # its own transaction, after the group
    assert committed_marks(db_path) == {"m1"}
    s.dedupe.check_and_add("default", "m2", T0, 3600)
    s.close()
    assert committed_marks(db_path) == {"m1", "m2"}


async def test_an_entry_that_cannot_be_stored_is_refused_at_once_and_leaves_no_trace(
    db_path: Path,
) -> None:
    with SqliteStore(db_path) as s:
        s.dedupe.check_and_add("default", "m1", T0, 3600)
        bad = HistoryEntry("user", "a", "A", "hi", T0, None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="message_id must be str"):
            s.history.append("default", "dm:a", bad, 10)
        assert s.history.get("default", "dm:a") == []
        s.flush()
        assert committed_marks(db_path) == {"m1"}
        raw = sqlite3.connect(db_path)
        try:
            assert raw.execute("SELECT count(*) FROM history_conversations").fetchone()[0] == 0
        finally:
            raw.close()


def _deny_inserts_into(table: str) -> Callable[..., int]:
    def authorizer(action: int, arg1: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_INSERT and arg1 == table:
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    return authorizer


async def test_a_failed_commit_is_rolled_back_and_written_with_the_next_one(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with SqliteStore(db_path) as s:
        s.history.append("default", "dm:a", HistoryEntry("user", "a", "A", "one", T0, "m1"), 10)
        s.dedupe.check_and_add("default", "m1", T0, 3600)
        s._db.conn.set_authorizer(_deny_inserts_into("dedupe"))  # e.g. a full disk
        with pytest.raises(sqlite3.DatabaseError):
            await s.marks_durable(None)  # before a send: the send must not happen
        # nothing half-written: the history of the same transaction is not there either
        assert committed_marks(db_path) == set()
        assert committed_history(db_path) == []
        # the commit at the next loop turn fails too: logged, not raised into the loop
        s.history.append("default", "dm:a", HistoryEntry("user", "a", "A", "two", T0, "m2"), 10)
        await until(lambda: "could not write history and dedupe marks" in caplog.text)
        # still answered from memory meanwhile
        assert s.dedupe.check_and_add("default", "m1", T0 + 1, 3600) is True
        assert [e.text for e in s.history.get("default", "dm:a")] == ["one", "two"]
        s._db.conn.set_authorizer(None)  # the disk has room again
        await s.marks_durable(None)
        assert committed_marks(db_path) == {"m1"}
        assert committed_history(db_path) == ["one", "two"]
        raw = sqlite3.connect(db_path)
        try:
            assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            raw.close()


async def test_bounds_hold_with_grouped_writes_and_a_reopen(db_path: Path) -> None:
    e = HistoryEntry("user", "a", "A", "hi", T0, "m")
    with SqliteStore(db_path, max_conversations=3, dedupe_max_entries=4) as s:
        for i in range(10):
            s.dedupe.check_and_add("default", f"m{i}", T0 + i, 3600)
            s.history.append("default", f"dm:{i}", e, 10)
    assert committed_marks(db_path) == {"m6", "m7", "m8", "m9"}
    with SqliteStore(db_path, max_conversations=3, dedupe_max_entries=4) as s:
        s.dedupe.check_and_add("default", "m10", T0 + 10, 3600)
        s.history.append("default", "dm:10", e, 10)
        assert [s.history.get("default", f"dm:{i}") != [] for i in range(7, 11)] == [
            False,
            True,
            True,
            True,
        ]
    assert committed_marks(db_path) == {"m7", "m8", "m9", "m10"}


def test_expired_marks_are_swept_when_the_oldest_expires(db_path: Path) -> None:
    with SqliteStore(db_path) as s:
        s.dedupe.check_and_add("default", "m1", T0, 100)
        s.dedupe.check_and_add("default", "m2", T0 + 50, 100)
        s.dedupe.check_and_add("default", "m3", T0 + 99, 100)  # nothing expired yet
        assert committed_marks(db_path) == {"m1", "m2", "m3"}
        s.dedupe.check_and_add("default", "m4", T0 + 100, 100)  # m1 expired
        assert committed_marks(db_path) == {"m2", "m3", "m4"}
        s.dedupe.check_and_add("default", "m5", T0 + 151, 100)  # m2 expired
        assert committed_marks(db_path) == {"m3", "m4", "m5"}
        assert s.dedupe.check_and_add("default", "m1", T0 + 152, 100) is False


# ---------------------------------------------------------------- the history cache


def _entry(conv: str, i: int) -> HistoryEntry:
    return HistoryEntry("user", conv, conv.upper(), f"{conv} {i}", T0 + i, f"{conv}-{i}")


async def test_a_conversation_dropped_from_the_history_cache_is_read_back_from_the_file(
    db_path: Path,
) -> None:
    reads: list[str] = []
    with SqliteStore(db_path, history_cache_conversations=2) as s:
        s._db.conn.set_trace_callback(
            lambda sql: reads.append(sql) if "FROM history_entries" in sql else None
        )
        for conv in "abcd":  # four conversations, two fit in memory
            s.history.append("default", f"dm:{conv}", _entry(conv, 0), 10)
        assert reads == []  # new ones: nothing to read
        assert committed_history(db_path) == []  # queued (no loop turn yet)
        # four conversations taking turns in two places: each one has left the cache
        # when it comes again, and is read back from the file (what it had queued is
        # committed first)
        for i in (1, 2):
            for conv in "abcd":
                s.history.append("default", f"dm:{conv}", _entry(conv, i), 10)
        assert len(reads) == 8
        for conv in "abcd":
            got = [e.text for e in s.history.get("default", f"dm:{conv}")]
            assert got == [f"{conv} {i}" for i in range(3)], conv
        assert len(reads) == 12
        s.history.append("default", "dm:a", _entry("a", 3), 3)  # trimmed past the limit
        assert [e.text for e in s.history.get("default", "dm:a")] == ["a 1", "a 2", "a 3"]
        for conv in "bcd":  # a leaves the cache again
            s.history.get("default", f"dm:{conv}")
        assert [e.text for e in s.history.get("default", "dm:a")] == ["a 1", "a 2", "a 3"]
        assert s.history.get("default", "dm:unknown") == []
    with SqliteStore(db_path, history_cache_conversations=1) as s:  # and after a restart
        for conv in "bcd":
            got = [e.text for e in s.history.get("default", f"dm:{conv}")]
            assert got == [f"{conv} {i}" for i in range(3)], conv
        assert [e.text for e in s.history.get("default", "dm:a")] == ["a 1", "a 2", "a 3"]


async def test_a_removal_is_written_behind_and_read_back_as_memory_holds_it(
    db_path: Path,
) -> None:
    with SqliteStore(db_path, history_cache_conversations=1) as s:
        said = [_entry("a", i) for i in range(3)]
        for e in said:
            s.history.append("default", "group:a", e, 10)
        s.history.append("default", "group:b", _entry("b", 0), 10)
        s._db.flush()
        s.history.remove("default", "group:a", [said[0], said[2]])
        assert committed_history(db_path) == ["a 0", "a 1", "a 2", "b 0"]  # (queued)
        s.history.get("default", "group:b")  # group:a leaves the cache, its rewrite queued
        assert s.history.get("default", "group:a") == [said[1]]  # the queue first
        assert committed_history(db_path) == ["b 0", "a 1"]
        s.history.remove("default", "group:a", [said[1]])  # emptied: forgotten
    with SqliteStore(db_path) as s:  # and after a restart
        assert s.history.get("default", "group:a") == []
        assert s.history.get("default", "group:b") == [_entry("b", 0)]


def test_the_history_cache_holds_at_most_its_bound_of_conversations(db_path: Path) -> None:
    with SqliteStore(db_path, history_cache_conversations=3, max_conversations=100) as s:
        for n in range(50):
            s.history.append("default", f"dm:{n}", _entry(str(n), 0), 10)
            assert s.history.get("work", f"dm:{n}") == []  # (unknown: nothing cached)
        assert len(s.history._cache) == 3
        assert all(s.history.get("default", f"dm:{n}") != [] for n in range(50))
        assert len(s.history._cache) == 3


def test_a_history_cache_bound_below_one_is_refused(db_path: Path) -> None:
    with pytest.raises(ValueError, match="cache_conversations"):
        SqliteStore(db_path, history_cache_conversations=0)


# ---------------------------------------------------------------- write-behind model


_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("append"),
            st.sampled_from(["default", "work"]),
            st.sampled_from(["dm:a", "dm:b", "dm:c", "dm:d", "group:r"]),
            st.integers(0, 4),  # limit (0: forget)
        ),
        st.tuples(
            st.just("clear"),
            st.sampled_from(["default", "work"]),
            st.sampled_from(["dm:a", "dm:b", "group:r"]),
            st.just(0),
        ),
        st.tuples(
            st.just("remove"),
            st.sampled_from(["default", "work"]),
            st.sampled_from(["dm:a", "dm:b", "group:r"]),
            st.integers(0, 15),  # which entries (a bit each, oldest first)
        ),
        st.tuples(
            st.just("mark"),
            st.sampled_from(["default", "work"]),
            st.sampled_from(["m1", "m2", "m3", "m4", "m5", "m6"]),
            st.integers(0, 30),  # seconds to advance before it (ttl 40)
        ),
        st.tuples(st.just("commit"), st.just(""), st.just(""), st.just(0)),
        st.tuples(st.just("durable"), st.just(""), st.just(""), st.just(0)),
        st.tuples(st.just("reopen"), st.just(""), st.just(""), st.just(0)),
    ),
    max_size=60,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_OPS)
def test_write_behind_matches_the_memory_store_across_commits_and_reopens(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, str, str, int]]
) -> None:
    """Whatever the order of writes, commits and reopens, SQLite answers like memory."""
    import asyncio

    path = tmp_path_factory.mktemp("model") / "wechat-sdk.sqlite3"
    bounds = {"max_conversations": 3, "dedupe_max_entries": 4}
    model = MemoryStore(**bounds)

    async def run() -> None:
        # a cache of one conversation: nearly every read and append goes to the file
        store = SqliteStore(path, **bounds, history_cache_conversations=1)
        now, n = T0, 0
        try:
            for op, account, key, arg in ops:
                if op == "append":
                    n += 1
                    e = HistoryEntry("user", "a", "A", f"t{n}", now, f"m{n}")
                    model.history.append(account, key, e, arg)
                    store.history.append(account, key, e, arg)
                elif op == "clear":
                    model.history.clear(account, key)
                    store.history.clear(account, key)
                elif op == "remove":
                    held = model.history.get(account, key)
                    gone = [e for i, e in enumerate(held) if arg >> i & 1]
                    model.history.remove(account, key, gone)
                    store.history.remove(account, key, gone)
                elif op == "mark":
                    now += arg
                    expected = model.dedupe.check_and_add(account, key, now, 40)
                    assert store.dedupe.check_and_add(account, key, now, 40) == expected
                elif op == "commit":
                    await asyncio.sleep(0)  # the loop turn ends: committed
                elif op == "durable":
                    await store.marks_durable(None)
                else:  # a restart: what memory knows must have been committed
                    store.close()
                    store = SqliteStore(path, **bounds, history_cache_conversations=1)
                for a in ("default", "work"):
                    for k in ("dm:a", "dm:b", "dm:c", "dm:d", "group:r"):
                        assert store.history.get(a, k) == model.history.get(a, k), (a, k)
        finally:
            store.close()

    asyncio.run(run())
    with SqliteStore(path, **bounds) as reopened:
        for a in ("default", "work"):
            for k in ("dm:a", "dm:b", "dm:c", "dm:d", "group:r"):
                assert reopened.history.get(a, k) == model.history.get(a, k), (a, k)
            for m in ("m1", "m2", "m3", "m4", "m5", "m6"):
                # probe both at the same late time: same marks kept, same ages
                assert reopened.dedupe.check_and_add(a, m, T0 + 10_000, 1e9) == (
                    model.dedupe.check_and_add(a, m, T0 + 10_000, 1e9)
                ), (a, m)


# ---------------------------------------------------------------- outbox (schema version 2)


def test_a_version_1_file_gets_the_outbox_and_keeps_its_rows(db_path: Path) -> None:
    e = HistoryEntry("user", "wxid_a", "A", "hello", T0, "m1")
    with SqliteStore(db_path) as s:
        s.pairing.add_request(req("ABCD2345", "wxid_b"))
        s.pairing.add_approved("default", "wxid_a", T0)
        s.history.append("default", "dm:wxid_a", e, 10)
        s.dedupe.check_and_add("default", "m1", T0, 3600)
    # what wechat-sdk with schema version 1 left: the same tables, no outbox
    raw = sqlite3.connect(db_path)
    raw.execute("DROP TABLE outbox")
    raw.execute("DROP TABLE webhook_queue")
    raw.execute("DROP TABLE idempotency_keys")
    raw.execute("ALTER TABLE dedupe DROP COLUMN claim")
    raw.execute("ALTER TABLE pairing_requests DROP COLUMN received_by")
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()

    with SqliteStore(db_path) as s:
        assert s.pairing.get_request_by_code("ABCD2345") == req("ABCD2345", "wxid_b")
        assert s.pairing.is_approved("default", "wxid_a")
        assert s.history.get("default", "dm:wxid_a") == [e]
        assert s.dedupe.check_and_add("default", "m1", T0 + 1, 3600) is True
        (item,) = s.outbox.add([OutboxItem("default", "wxid_a", "text", T0, text="rest")])
        assert s.outbox.items("default") == [item]
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"pairing_requests", "approved_senders", "history_entries", "dedupe"} < tables
        assert {"outbox", "webhook_queue", "idempotency_keys"} <= tables
    finally:
        raw.close()


def test_a_version_3_file_keeps_its_outbox_and_gets_the_pairing_code_column(
    db_path: Path,
) -> None:
    with SqliteStore(db_path) as s:
        (old,) = s.outbox.add([OutboxItem("default", "wxid_a", "text", T0, text="rest")])
    # what wechat-sdk with schema version 3 left: an outbox without the pairing_code column
    raw = sqlite3.connect(db_path)
    raw.execute("ALTER TABLE outbox DROP COLUMN pairing_code")
    raw.execute("ALTER TABLE outbox DROP COLUMN claim")
    raw.execute("ALTER TABLE outbox DROP COLUMN notice")
    raw.execute("ALTER TABLE dedupe DROP COLUMN claim")
    raw.execute("ALTER TABLE pairing_requests DROP COLUMN received_by")
    raw.execute("PRAGMA user_version = 3")
    raw.commit()
    raw.close()

    with SqliteStore(db_path) as s:
        assert s.outbox.items("default") == [old]
        item = OutboxItem("default", "wxid_k", "text", T0, text="code", pairing_code="ABCD2345")
        (added,) = s.outbox.add([item])
        assert s.outbox.items("default") == [old, added]
        assert added.pairing_code == "ABCD2345"
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        raw.close()


def test_a_version_4_file_keeps_its_marks_and_journal_and_gets_the_claim_columns(
    db_path: Path,
) -> None:
    with SqliteStore(db_path) as s:
        s.dedupe.check_and_add("default", "m1", T0, 3600)
        (old,) = s.outbox.add([OutboxItem("default", "wxid_a", "message", T0, turn="m1")])
    # what wechat-sdk with schema version 4 left: no claims with marks or journaled messages
    raw = sqlite3.connect(db_path)
    raw.execute("ALTER TABLE outbox DROP COLUMN claim")
    raw.execute("ALTER TABLE outbox DROP COLUMN notice")
    raw.execute("ALTER TABLE dedupe DROP COLUMN claim")
    raw.execute("ALTER TABLE pairing_requests DROP COLUMN received_by")
    raw.execute("PRAGMA user_version = 4")
    raw.commit()
    raw.close()

    with SqliteStore(db_path) as s:
        assert s.outbox.items("default") == [old]
        assert old.claim is None
        # a mark of unknown claim is another delivery's: a claimed check is a duplicate
        assert s.dedupe.check_and_add("default", "m1", T0 + 1, 3600, "c-2") is True
        (new,) = s.outbox.add(
            [OutboxItem("default", "wxid_a", "message", T0, turn="m2", claim="c")]
        )
        assert s.dedupe.check_and_add("default", "m2", T0 + 1, 3600, "c") is False
    with SqliteStore(db_path) as s:  # the next process: the claims were kept
        assert s.outbox.items("default") == [old, new]
        assert new.claim == "c"
        assert s.dedupe.check_and_add("default", "m2", T0 + 2, 3600, "c") is False
        assert s.dedupe.check_and_add("default", "m2", T0 + 2, 3600, "other") is True
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        raw.close()


def test_a_version_4_file_keeps_its_pairing_requests_and_gets_the_received_by_column(
    db_path: Path,
) -> None:
    with SqliteStore(db_path) as s:
        s.pairing.add_request(req("ABCD2345", "wxid_b", account="groups"))
        s.pairing.add_approved("groups", "wxid_a", T0)
    # what wechat-sdk with schema version 4 left: requests without the account they came to
    raw = sqlite3.connect(db_path)
    raw.execute("ALTER TABLE outbox DROP COLUMN claim")
    raw.execute("ALTER TABLE outbox DROP COLUMN notice")
    raw.execute("ALTER TABLE dedupe DROP COLUMN claim")
    raw.execute("ALTER TABLE pairing_requests DROP COLUMN received_by")
    raw.execute("PRAGMA user_version = 4")
    raw.commit()
    raw.close()

    with SqliteStore(db_path) as s:
        old = s.pairing.get_request_by_code("ABCD2345")
        assert old == req("ABCD2345", "wxid_b", account="groups")
        assert old is not None and old.received_by is None
        assert s.pairing.is_approved("groups", "wxid_a")
        new = replace(req("EFGH2345", "wxid_c", account="groups"), received_by="dm")
        s.pairing.add_request(new)
        assert s.pairing.list_requests("groups") == [old, new]
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    finally:
        raw.close()


def test_a_version_5_file_keeps_its_outbox_and_gets_the_notice_column(db_path: Path) -> None:
    notice = "part 10\n\n(more after your next message)"
    with SqliteStore(db_path) as s:
        (old,) = s.outbox.add([OutboxItem("default", "wxid_a", "text", T0, text=notice)])
    # what wechat-sdk with schema version 5 left: no mark of a kept text's notice
    raw = sqlite3.connect(db_path)
    raw.execute("ALTER TABLE outbox DROP COLUMN notice")
    raw.execute("PRAGMA user_version = 5")
    raw.commit()
    raw.close()

    with SqliteStore(db_path) as s:
        assert s.outbox.items("default") == [old]
        assert old.notice is False
        item = OutboxItem("default", "wxid_a", "text", T0, text=notice, notice=True)
        (added,) = s.outbox.add([item])
    with SqliteStore(db_path) as s:  # the next process: the mark was kept
        assert s.outbox.items("default") == [old, added]
        assert added.notice is True
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    finally:
        raw.close()


def committed_outbox(path: Path) -> list[tuple[str, str]]:
    raw = sqlite3.connect(path)
    try:
        return raw.execute("SELECT text, state FROM outbox ORDER BY seq").fetchall()
    finally:
        raw.close()


async def test_outbox_writes_are_durable_at_once_inside_the_event_loop(db_path: Path) -> None:
    with SqliteStore(db_path) as s:
        s.dedupe.check_and_add("default", "m1", T0, 3600)  # grouped: not committed yet
        assert committed_marks(db_path) == set()
        (item,) = s.outbox.add([OutboxItem("default", "wxid_a", "text", T0, text="rest")])
        # committed before add() returned, with the grouped writes that came before it
        assert committed_outbox(db_path) == [("rest", "pending")]
        assert committed_marks(db_path) == {"m1"}
        s.outbox.set_state(item.id, "sending")
        assert committed_outbox(db_path) == [("rest", "sending")]
        s.outbox.delete(item.id)
        assert committed_outbox(db_path) == []


def test_outbox_survives_a_reopen(db_path: Path) -> None:
    with SqliteStore(db_path) as s:
        added = s.outbox.add(
            [
                OutboxItem("default", "wxid_a", "text", T0, text="one", mention_ids=("x",)),
                OutboxItem("default", "wxid_a", "turn", T0, turn="{}", dm=True),
            ]
        )
        s.outbox.set_state(added[1].id, "sending")
    with SqliteStore(db_path) as s:
        assert s.outbox.items("default") == [added[0], replace(added[1], state="sending")]


async def test_a_store_closed_while_a_mark_fsync_runs_ends_it_cleanly(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import threading

    started, go_on = threading.Event(), threading.Event()
    real = os.fdatasync

    def blocked(fd: int) -> None:
        started.set()
        go_on.wait(5)
        real(fd)

    s = SqliteStore(db_path)
    s.dedupe.check_and_add("default", "m1", T0, 3600)
    monkeypatch.setattr(os, "fdatasync", blocked)
    waiting = asyncio.ensure_future(s.marks_durable(None))
    await asyncio.to_thread(started.wait, 5)
    monkeypatch.setattr(os, "fdatasync", real)
    s.close()  # commits and syncs everything itself
    go_on.set()
    await waiting  # no error: what it waited for is durable
    assert committed_marks(db_path) == {"m1"}


async def test_a_limit_that_shrinks_then_grows_before_a_commit_loses_no_row(
    db_path: Path,
) -> None:
    def e(i: int) -> HistoryEntry:
        return HistoryEntry("user", "a", "A", f"m{i}", T0 + i, f"m{i}")

    with SqliteStore(db_path) as s:
        for i in range(1, 6):
            s.history.append("default", "dm:a", e(i), 5)
        s.flush()
        s.history.append("default", "dm:a", e(6), 3)  # trims to m4..m6 (a trim queued)
        s.history.append("default", "dm:a", e(7), 10)  # grows again: m4..m7 kept
        held = [x.text for x in s.history.get("default", "dm:a")]
    assert held == ["m4", "m5", "m6", "m7"]
    with SqliteStore(db_path) as s:
        assert [x.text for x in s.history.get("default", "dm:a")] == held


async def test_text_utf8_cannot_encode_is_stored_replaced_and_blocks_nothing(
    db_path: Path,
) -> None:
    """A lone surrogate (half an emoji from a cut JSON escape) must not poison the queue:
    it would fail every later commit, every send and every pairing write."""
    half = "\ud83d"
    with SqliteStore(db_path) as s:
        s.history.append(
            "default", "dm:a", HistoryEntry("user", "a", f"A{half}", f"hi {half}", T0, "m1"), 5
        )
        assert s.dedupe.check_and_add("default", f"id{half}", T0, 3600) is False
        assert s.dedupe.check_and_add("default", f"id{half}", T0 + 1, 3600) is True
        await s.marks_durable(None)  # the reply's commit and fsync go through
        s.pairing.add_approved("default", "wxid_a", T0)  # and so do pairing writes
        (entry,) = s.history.get("default", "dm:a")
        assert (entry.sender_name, entry.text) == ("A?", "hi ?")
    assert committed_marks(db_path) == {"id?"}
    assert committed_history(db_path) == ["hi ?"]
    with SqliteStore(db_path) as s:  # the same after a restart
        assert s.dedupe.check_and_add("default", f"id{half}", T0 + 2, 3600) is True


def test_a_mark_fsync_left_by_an_ended_event_loop_does_not_break_the_next(
    db_path: Path,
) -> None:
    import asyncio

    s = SqliteStore(db_path)
    try:
        loop = asyncio.new_event_loop()
        left: list[asyncio.Future[None]] = []

        async def first() -> None:
            s.dedupe.check_and_add("default", "m1", T0, 3600)
            left.append(asyncio.ensure_future(s.marks_durable(None)))
            await asyncio.sleep(0.01)  # its fsync under way, not finished

        loop.run_until_complete(first())
        loop.close()  # ended without finishing it
        # (that task can never finish now: no "destroyed but pending" noise for it)
        for task in left:
            task._log_destroy_pending = False  # type: ignore[attr-defined]

        async def second() -> None:
            s.dedupe.check_and_add("default", "m2", T0, 3600)
            await asyncio.wait_for(s.marks_durable(None), 5)

        asyncio.run(second())
        assert committed_marks(db_path) == {"m1", "m2"}
    finally:
        s.close()


async def test_a_fast_disks_fsync_runs_on_the_event_loop_and_a_slow_ones_in_a_thread(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply waits for its mark's fsync: on a fast disk it runs on the loop (no thread
    hops to wait for); once one took long, the next go to a worker thread again, so a
    slow disk never stalls the loop."""
    import threading
    from types import SimpleNamespace

    from wechat_sdk.stores.sqlite import db

    threads: list[int] = []
    delay = [0.0]
    disk_time = [0.0]  # the time the store reads around its fsync: only the disk moves it

    def fsync(fd: int) -> None:  # a disk that takes exactly this long
        threads.append(threading.get_ident())
        disk_time[0] += delay[0]

    monkeypatch.setattr(db, "time", SimpleNamespace(perf_counter=lambda: disk_time[0]))

    loop_thread = threading.get_ident()
    with SqliteStore(db_path) as s:
        monkeypatch.setattr(os, "fdatasync", fsync)

        async def mark(n: int) -> None:
            s.dedupe.check_and_add("default", f"m{n}", T0, 3600)
            await s.marks_durable(s.mark_position())

        await mark(1)  # the disk unknown yet: a thread
        await mark(2)  # it was fast: here
        delay[0] = 0.05  # the disk slows down
        await mark(3)  # here, and measured slow
        await mark(4)  # a thread again
        delay[0] = 0.0
        await mark(5)  # a thread, measured fast
        await mark(6)  # here again
        on_loop = [t == loop_thread for t in threads]
        assert on_loop == [False, True, True, False, False, True]
        assert committed_marks(db_path) == {f"m{n}" for n in range(1, 7)}


async def test_a_refused_replace_changes_nothing_not_even_the_queued_items(tmp_path: Path) -> None:
    """A message's journal entry (written behind, still queued) swapped out by a replace
    the disk refuses: the replace raises, and the entry is still there (one transaction:
    refused, nothing changed)."""
    from typing import Any

    from wechat_sdk.stores.base import OutboxItem

    store = SqliteStore(tmp_path / "wechat-sdk.sqlite3")
    try:
        outbox = store.outbox
        (queued,) = outbox.add(
            [OutboxItem("default", "wxid_alice", "message", 1.0, turn="m-1", dm=True)]
        )
        real = outbox._insert

        def full(*_: Any) -> Any:
            raise sqlite3.OperationalError("database or disk is full")

        outbox._insert = full  # type: ignore[method-assign]
        with pytest.raises(sqlite3.OperationalError):
            outbox.replace([queued], [OutboxItem("default", "wxid_alice", "text", 1.0, text="x")])
        outbox._insert = real  # type: ignore[method-assign]
        assert [(i.kind, i.turn) for i in outbox.items("default")] == [("message", "m-1")]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("error", "a_store_failure"),
    [
        ("database is locked", True),
        ("database or disk is full", True),
        ("disk I/O error", True),
        ("attempt to write a readonly database", True),
        ("unable to open database file", True),
        ("no such table: outbox", False),  # a bug: said as one, with its traceback
        ('near "SELEC": syntax error', False),
    ],
)
def test_a_sqlite_error_is_a_store_failure_only_when_the_database_failed(
    error: str, a_store_failure: bool
) -> None:
    from wechat_sdk.stores.configured import store_failure

    said = store_failure(sqlite3.OperationalError(error), None)
    assert (said is not None) == a_store_failure


async def test_the_committers_lines_name_no_account(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The commit of the queued writes is the store's, for every account: its line shows
    no account (``-``). It showed the account that happened to write first (the task
    committing them was started in that account's task, and took its account along)."""
    import asyncio

    from wechat_sdk.gateway.runner import ACCOUNT_OF_TASK
    from wechat_sdk.gateway.service import _AccountField

    caplog.handler.addFilter(_AccountField())  # (the gateway's log: each line's account)
    with SqliteStore(db_path) as s:
        s._db.conn.set_authorizer(_deny_inserts_into("history_entries"))  # e.g. a full disk

        async def work_account() -> None:
            ACCOUNT_OF_TASK.set("work")
            s.history.append("work", "dm:a", HistoryEntry("user", "a", "A", "one", T0, "m1"), 10)

        await asyncio.get_running_loop().create_task(work_account())
        await until(lambda: "could not write history and dedupe marks" in caplog.text)
        s._db.conn.set_authorizer(None)
    said = [r for r in caplog.records if "could not write history" in r.getMessage()]
    assert [getattr(r, "account", None) for r in said] == ["-"]
