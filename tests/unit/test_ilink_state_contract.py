"""The iLink adapter's state port (cursor, recorded messages, reply windows) behaves the
same in the SQLite store's database, in a database of its own (a gateway with another
store) and on the store's Redis server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from wechat_sdk.adapters.ilink.state import Delivered, PeerWindow, SqliteILinkState
from wechat_sdk.clock import RealClock
from wechat_sdk.stores.sqlite import SqliteStore

T0 = 1_700_000_000.0


class Opener:
    """Opens the state of account "bot" where the test's kind keeps it; closes what it
    opened (the SQLite store's database outlives its states, as in a gateway)."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.kind, self.tmp_path, self.request = kind, tmp_path, request
        self.stores: list[SqliteStore] = []

    def __call__(self) -> Any:
        if self.kind == "store":
            store = SqliteStore(self.tmp_path / "wechat-sdk.sqlite3")
            self.stores.append(store)
            return SqliteILinkState(store.database, "bot")
        if self.kind == "own":
            return SqliteILinkState.in_dir(self.tmp_path / "accounts" / "bot", "bot", RealClock())
        from wechat_sdk.adapters.ilink.redis_state import RedisILinkState
        from wechat_sdk.puppets import SharedRedis

        shared = SharedRedis(
            self.request.getfixturevalue("redis_url"),
            self.request.getfixturevalue("redis_namespace"),
        )
        return RedisILinkState(shared, "bot")


@pytest.fixture(params=["store", "own", "redis"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    made = Opener(request.param, tmp_path, request)
    yield made
    for store in made.stores:
        store.close()


@pytest.fixture
async def state(opener: Opener) -> AsyncIterator[Any]:
    kept = opener()
    yield kept
    await kept.close()


def said(
    n: int, peer: str = "alice", at: float = T0, token: str | None = "ctx", key: str | None = None
) -> Delivered:
    return Delivered(f"m{n}", peer, f'{{"n": {n}}}', f"text {n}", True, token, at, copy_key=key)


async def test_a_batch_and_its_cursor_are_recorded_and_duplicates_left_out(state: Any) -> None:
    assert await state.cursor() == ""
    got = await state.record([said(1), said(2), said(1)], "c1")
    assert got.added == ["m1", "m2"]
    assert got.again == [("m1", "m1")]  # (delivered twice: the id it is recorded under)
    assert await state.cursor() == "c1"
    got = await state.record([said(2), said(3)], "c2")
    assert (got.added, got.again) == (["m3"], [("m2", "m2")])
    assert await state.cursor() == "c2"
    assert (await state.record([], None)).added == []
    assert await state.cursor() == "c2"  # no cursor given: the old one stays
    stored = await state.entry("m3")
    assert stored is not None
    assert (stored.peer, stored.from_user, stored.at, stored.raw, stored.text) == (
        "alice",
        True,
        T0,
        '{"n": 3}',
        "text 3",
    )
    assert await state.entry("nope") is None


async def test_windows_count_the_bots_messages_since_the_users_last(state: Any) -> None:
    await state.record([said(1, at=T0, token="t1")], "c1")
    await state.sent("alice", "b1", "answer", T0 + 1)
    await state.sent("alice", "b2", "more", T0 + 2)
    assert await state.window("alice") == PeerWindow(T0, 2)
    assert await state.context_token("alice") == "t1"
    await state.record([said(2, at=T0 + 10, token=None)], "c2")  # no token: the last one stays
    assert await state.window("alice") == PeerWindow(T0 + 10, 0)
    assert await state.context_token("alice") == "t1"
    await state.record([said(3, at=T0 + 5, token="t3")], "c3")  # an older message, late
    assert await state.window("alice") == PeerWindow(T0 + 10, 0)
    assert await state.context_token("alice") == "t3"
    await state.sent("bob", "b3", "hi", T0)
    assert await state.windows() == {
        "alice": PeerWindow(T0 + 10, 0),
        "bob": PeerWindow(None, 1),
    }
    assert await state.window("carol") == PeerWindow(None, 0)
    own = await state.entry("b1")
    assert own is not None and own.text == "answer" and not own.from_user


async def test_a_group_message_is_recorded_but_renews_no_window(state: Any) -> None:
    """The window is the user's direct chat's: a message of theirs in a group leaves it,
    places used and time, as it was (and a group's token is none: the wire drops it)."""
    await state.record([said(1, at=T0, token="t1")], "c1")
    await state.sent("alice", "b1", "answer", T0 + 1)
    in_group = Delivered("m2", "alice", '{"n": 2}', "text 2", True, None, T0 + 10, in_group=True)
    assert (await state.record([in_group], "c2")).added == ["m2"]
    assert await state.window("alice") == PeerWindow(T0, 1)
    assert await state.windows() == {"alice": PeerWindow(T0, 1)}
    stored = await state.entry("m2")
    assert stored is not None and stored.from_user


async def test_recent_user_messages_oldest_first_and_prune(state: Any) -> None:
    await state.record([said(1, at=T0 + 2), said(2, at=T0 + 1), said(3, at=T0 + 3)], "c")
    await state.sent("alice", "b1", "answer", T0 + 2)
    assert await state.recent(T0 + 2) == ["m1", "m3"]
    assert await state.recent(T0) == ["m2", "m1", "m3"]
    await state.prune(T0 + 2)
    assert await state.entry("m2") is None
    assert await state.entry("m1") is not None
    assert await state.window("alice") == PeerWindow(T0 + 3, 1)  # peers stay


async def test_prune_forgets_the_peers_not_heard_from_since(state: Any) -> None:
    """A peer whose last message is older than the horizon loses its token and its
    window (no row left for each person who ever wrote); the others keep theirs."""
    await state.record([said(1, "old", T0 + 1, "t-old"), said(2, "alice", T0 + 3, "t-a")], "c")
    await state.sent("old", "b1", "answer", T0 + 1)
    await state.sent("alice", "b2", "answer", T0 + 3)
    await state.prune(T0 + 2)
    assert await state.windows() == {"alice": PeerWindow(T0 + 3, 1)}
    assert await state.context_token("old") is None
    assert await state.window("old") == PeerWindow(None, 0)
    assert await state.context_token("alice") == "t-a"
    await state.record([said(3, "old", T0 + 4, "t-new")], "c2")  # they write again
    assert await state.window("old") == PeerWindow(T0 + 4, 0)
    assert await state.context_token("old") == "t-new"


async def test_forget_all_leaves_nothing_of_the_old_server(state: Any) -> None:
    """The configured server changed: its cursor, messages, context tokens and windows
    are forgotten; what the new server gives is then recorded as at a first start."""
    await state.record([said(1, at=T0, token="t1"), said(3, "bob", T0, "t2", key="k1")], "c1")
    await state.sent("alice", "b1", "answer", T0 + 1)
    await state.forget_all()
    assert await state.cursor() == ""
    assert await state.recent(0) == []
    assert await state.entry("m1") is None and await state.entry("b1") is None
    assert await state.windows() == {}
    assert await state.context_token("alice") is None
    assert await state.window("alice") == PeerWindow(None, 0)
    # (nor is a message of the old server a duplicate, or a copy's original)
    got = await state.record([said(1, at=T0 + 5, token="n1"), said(2, "bob", key="k1")], "n")
    assert (got.added, got.again) == (["m1", "m2"], [])
    assert await state.cursor() == "n"
    assert await state.context_token("alice") == "n1"
    assert await state.recent(0) == ["m2", "m1"]


async def test_what_is_flushed_is_there_for_the_next_start(state: Any, opener: Opener) -> None:
    await state.flush()  # nothing written yet: nothing to do, no error
    await state.record([said(1)], "c1")
    await state.flush()
    await state.close()
    again = opener()
    try:
        assert await again.cursor() == "c1"
        assert await again.recent(T0 - 1) == ["m1"]
    finally:
        await again.close()
    # (the fixture closes the first one again: closing twice is harmless)


async def test_a_copy_under_a_new_id_is_known_after_a_restart(state: Any, opener: Opener) -> None:
    """iLink delivers a message again under a new id (see adapters/ilink/copies.py): the
    state knows it by its copy key from the first copy on, across a restart; the copy is
    not recorded, its context_token is the peer's latest (the newest the server gave),
    and its window is left as counted (the same message, said at the same time)."""
    await state.record([said(1, token="t1", key="k1")], "c1")
    await state.sent("alice", "b1", "answer", T0 + 1)
    await state.close()
    again = opener()
    try:
        got = await again.record([said(2, token="t2", key="k1"), said(3, "bob", key="k3")], "c2")
        assert (got.added, got.again) == (["m3"], [("m2", "m1")])
        assert await again.cursor() == "c2"
        assert await again.entry("m2") is None
        assert await again.recent(0) == ["m1", "m3"]  # (a start hands no copy on again)
        assert await again.context_token("alice") == "t2"
        assert await again.window("alice") == PeerWindow(T0, 1)
        got = await again.record([said(4, "bob", key="k4"), said(5, "bob", key="k4")], "c3")
        assert (got.added, got.again) == (["m4"], [("m5", "m4")])  # in one batch
        got = await again.record([said(1, token="t1b", key="k1"), said(6, key="k6")], "c4")
        assert (got.added, got.again) == (["m6"], [("m1", "m1")])
        assert await again.context_token("alice") == "ctx"  # (m6's, the last delivered)
    finally:
        await again.close()


async def test_a_copy_key_is_forgotten_with_its_message(state: Any) -> None:
    """Copy keys are kept as long as their messages (30 days, pruned daily), and go with
    the old server's state."""
    await state.record([said(1, at=T0, key="k1"), said(2, at=T0 + 2, key="k2")], "c1")
    await state.prune(T0 + 1)
    got = await state.record([said(3, at=T0, key="k1"), said(4, at=T0 + 2, key="k2")], "c2")
    assert (got.added, got.again) == (["m3"], [("m4", "m2")])
    await state.forget_all()
    got = await state.record([said(5, at=T0 + 2, key="k2")], "c3")
    assert (got.added, got.again) == (["m5"], [])
