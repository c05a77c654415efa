"""One contract for every Store implementation: memory, SQLite and Redis (on a real
redis-server) must behave the same (pairing, history, dedupe, the outbox, the webhook
queue, idempotency keys, and the dedupe marks' position and durability)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from wechat_sdk.agent import HistoryEntry
from wechat_sdk.inbound.history import HistoryBook
from wechat_sdk.puppet import OutboundFile
from wechat_sdk.stores import (
    ApprovedSender,
    MemoryStore,
    OutboxItem,
    PairingRequest,
    SqliteStore,
    Store,
)

T0 = 1_700_000_000.0

MakeStore = Callable[..., Any]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    """A factory for fresh stores of one implementation (all closed afterwards); the
    Redis ones on this session's real redis-server, each in a namespace of its own."""
    opened: list[Any] = []

    def make(**kwargs: Any) -> Any:
        if request.param == "memory":
            kwargs.pop("clock", None)  # (nothing to wait for: it needs no clock)
            store: Any = MemoryStore(**kwargs)
        elif request.param == "redis":
            from wechat_sdk.stores.redis import RedisStore

            kwargs.pop("clock", None)  # (nothing to wait for: Redis acknowledged each mark)
            url = request.getfixturevalue("redis_url")
            namespace = request.getfixturevalue("redis_namespace")
            store = RedisStore(url, namespace=f"{namespace}-{len(opened)}", **kwargs)
        else:
            store = SqliteStore(tmp_path / f"state{len(opened)}" / "wechat-sdk.sqlite3", **kwargs)
        opened.append(store)
        return store

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(make_store: MakeStore) -> Any:
    return make_store()


def req(
    code: str,
    sender: str = "wxid_alice",
    account: str = "default",
    created: float = T0,
    ttl: float = 3600.0,
    name: str = "Alice",
) -> PairingRequest:
    return PairingRequest(
        code=code,
        account_id=account,
        sender_id=sender,
        sender_name=name,
        created_at=created,
        expires_at=created + ttl,
    )


def entry(text: str, t: float = T0, role: str = "user") -> HistoryEntry:
    return HistoryEntry(
        role="user" if role == "user" else "assistant",
        sender_id="wxid_alice",
        sender_name="Alice",
        text=text,
        timestamp=t,
        message_id=f"m-{text}",
    )


# --- bundle ---------------------------------------------------------------------------


def test_bundle_satisfies_store_protocol_and_closes_twice(store: Any) -> None:
    assert isinstance(store, Store)
    store.close()
    store.close()


# --- pairing requests -------------------------------------------------------------------


def test_request_round_trip_by_code_and_sender(store: Any) -> None:
    r = req("ABCD2345")
    store.pairing.add_request(r)
    assert store.pairing.get_request_by_code("ABCD2345") == r
    assert store.pairing.get_request_for_sender("default", "wxid_alice") == r
    assert store.pairing.get_request_for_sender("default", "wxid_bob") is None
    assert store.pairing.get_request_for_sender("other", "wxid_alice") is None


def test_a_request_keeps_the_account_its_sender_wrote_to(store: Any) -> None:
    # (a shared pairing list: kept in groups' list, said to dm; approve --notify tells
    # the sender through dm)
    r = replace(req("ABCD2345", account="groups"), received_by="dm")
    store.pairing.add_request(r)
    assert store.pairing.get_request_by_code("ABCD2345") == r
    assert store.pairing.get_request_for_sender("groups", "wxid_alice") == r
    assert store.pairing.list_requests("groups") == [r]
    assert store.pairing.delete_request("ABCD2345") == r
    assert req("ABCD2345").received_by is None  # (none recorded: a request of an older build)


@pytest.mark.parametrize("typed", ["abcd2345", "AbCd2345", "  abcd2345\n"])
def test_code_lookup_is_case_insensitive(store: Any, typed: str) -> None:
    store.pairing.add_request(req("ABCD2345"))
    found = store.pairing.get_request_by_code(typed)
    assert found is not None
    assert found.code == "ABCD2345"


def test_codes_are_stored_upper_case(store: Any) -> None:
    store.pairing.add_request(req("abcd2345"))
    found = store.pairing.get_request_by_code("ABCD2345")
    assert found is not None
    assert found.code == "ABCD2345"


def test_duplicate_pending_code_is_refused(store: Any) -> None:
    store.pairing.add_request(req("ABCD2345", sender="wxid_alice"))
    with pytest.raises(ValueError):
        store.pairing.add_request(req("abcd2345", sender="wxid_bob", account="other"))
    assert store.pairing.get_request_for_sender("other", "wxid_bob") is None
    alice = store.pairing.get_request_by_code("ABCD2345")
    assert alice is not None and alice.sender_id == "wxid_alice"


def test_new_request_of_same_sender_replaces_old(store: Any) -> None:
    store.pairing.add_request(req("AAAA2222"))
    store.pairing.add_request(req("BBBB3333", created=T0 + 10))
    assert store.pairing.get_request_by_code("AAAA2222") is None
    assert [r.code for r in store.pairing.list_requests("default")] == ["BBBB3333"]


def test_list_requests_oldest_first_and_per_account(store: Any) -> None:
    store.pairing.add_request(req("CCCC4444", sender="c", created=T0 + 2))
    store.pairing.add_request(req("AAAA2222", sender="a", created=T0))
    store.pairing.add_request(req("BBBB3333", sender="b", created=T0 + 1, account="work"))
    assert [r.code for r in store.pairing.list_requests()] == ["AAAA2222", "BBBB3333", "CCCC4444"]
    assert [r.code for r in store.pairing.list_requests(None)] == [
        "AAAA2222",
        "BBBB3333",
        "CCCC4444",
    ]
    assert [r.code for r in store.pairing.list_requests("default")] == ["AAAA2222", "CCCC4444"]
    assert [r.code for r in store.pairing.list_requests("work")] == ["BBBB3333"]
    assert store.pairing.list_requests("nobody") == []


def test_list_requests_ties_keep_insertion_order(store: Any) -> None:
    for code, sender in [("ZZZZ2222", "z"), ("AAAA2222", "a"), ("MMMM2222", "m")]:
        store.pairing.add_request(req(code, sender=sender))
    assert [r.code for r in store.pairing.list_requests()] == ["ZZZZ2222", "AAAA2222", "MMMM2222"]


def test_delete_request_returns_the_row_once(store: Any) -> None:
    r = req("ABCD2345")
    store.pairing.add_request(r)
    assert store.pairing.delete_request("abcd2345") == r
    assert store.pairing.delete_request("ABCD2345") is None
    assert store.pairing.get_request_by_code("ABCD2345") is None
    assert not store.pairing.is_approved("default", "wxid_alice")


def test_purge_expired_removes_only_expired(store: Any) -> None:
    store.pairing.add_request(req("OLDD2222", sender="old", created=T0, ttl=100))
    store.pairing.add_request(req("NEWW3333", sender="new", created=T0 + 50, ttl=100))
    assert store.pairing.purge_expired(T0 + 99) == 0
    assert store.pairing.purge_expired(T0 + 100) == 1  # expires_at itself is expired
    assert [r.code for r in store.pairing.list_requests()] == ["NEWW3333"]
    assert store.pairing.purge_expired(T0 + 100) == 0


# --- approved senders -------------------------------------------------------------------


def test_approved_senders_per_account(store: Any) -> None:
    p = store.pairing
    assert p.add_approved("default", "wxid_b", T0 + 1) == ApprovedSender(
        "default", "wxid_b", T0 + 1
    )
    p.add_approved("default", "wxid_a", T0)
    p.add_approved("work", "wxid_c", T0)
    assert p.is_approved("default", "wxid_a")
    assert not p.is_approved("work", "wxid_a")
    assert [a.sender_id for a in p.list_approved("default")] == ["wxid_a", "wxid_b"]
    assert p.list_approved("work") == [ApprovedSender("work", "wxid_c", T0)]
    assert p.remove_approved("default", "wxid_a") is True
    assert p.remove_approved("default", "wxid_a") is False
    assert not p.is_approved("default", "wxid_a")
    assert p.is_approved("default", "wxid_b")


def test_re_approving_updates_time_without_duplicating(store: Any) -> None:
    store.pairing.add_approved("default", "wxid_a", T0)
    store.pairing.add_approved("default", "wxid_a", T0 + 5)
    assert store.pairing.list_approved("default") == [ApprovedSender("default", "wxid_a", T0 + 5)]


# --- approve_request --------------------------------------------------------------------


def test_approve_request_moves_request_to_approved(store: Any) -> None:
    store.pairing.add_request(req("ABCD2345"))
    got = store.pairing.approve_request("abcd2345", T0 + 10)
    assert got == ApprovedSender("default", "wxid_alice", T0 + 10)
    assert store.pairing.get_request_by_code("ABCD2345") is None
    assert store.pairing.list_requests() == []
    assert store.pairing.is_approved("default", "wxid_alice")
    assert store.pairing.approve_request("ABCD2345", T0 + 11) is None


def test_approve_request_refuses_unknown_expired_and_other_account(store: Any) -> None:
    p = store.pairing
    assert p.approve_request("NOPE2345", T0) is None
    p.add_request(req("ABCD2345", ttl=100))
    assert p.approve_request("ABCD2345", T0 + 10, account_id="work") is None
    assert p.approve_request("ABCD2345", T0 + 100) is None  # expired
    # Nothing changed by the refusals.
    assert p.get_request_by_code("ABCD2345") is not None
    assert not p.is_approved("default", "wxid_alice")
    assert p.approve_request("ABCD2345", T0 + 10, account_id="default") is not None


def test_approve_is_atomic_when_adding_the_approval_fails(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.pairing.add_request(req("ABCD2345"))

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store.pairing, "_upsert_approved", boom)
    with pytest.raises(RuntimeError):
        store.pairing.approve_request("ABCD2345", T0 + 1)
    monkeypatch.undo()
    assert store.pairing.get_request_by_code("ABCD2345") is not None
    assert not store.pairing.is_approved("default", "wxid_alice")
    # And the store still works afterwards.
    assert store.pairing.approve_request("ABCD2345", T0 + 1) is not None


# --- history ----------------------------------------------------------------------------


def texts(entries: list[HistoryEntry]) -> list[str]:
    return [e.text for e in entries]


def test_history_oldest_first_and_round_trip(store: Any) -> None:
    h = store.history
    e1 = entry("one", T0)
    e2 = HistoryEntry("assistant", "bot", "Bot", "two", T0 + 1, "m2")
    h.append("default", "wxid_alice", e1, 10)
    h.append("default", "wxid_alice", e2, 10)
    assert h.get("default", "wxid_alice") == [e1, e2]
    assert h.get("default", "unknown") == []
    assert h.get("nobody", "wxid_alice") == []


def test_history_keeps_limit_newest(store: Any) -> None:
    for i in range(7):
        store.history.append("default", "room@chatroom", entry(f"m{i}", T0 + i), 3)
    assert texts(store.history.get("default", "room@chatroom")) == ["m4", "m5", "m6"]
    store.history.append("default", "room@chatroom", entry("m7", T0 + 7), 2)
    assert texts(store.history.get("default", "room@chatroom")) == ["m6", "m7"]


def test_history_order_is_insertion_not_timestamp(store: Any) -> None:
    store.history.append("default", "k", entry("late", T0 + 100), 5)
    store.history.append("default", "k", entry("early", T0), 5)
    assert texts(store.history.get("default", "k")) == ["late", "early"]


def test_history_clear_and_zero_limit(store: Any) -> None:
    h = store.history
    h.append("default", "a", entry("x"), 5)
    h.append("default", "b", entry("y"), 5)
    h.clear("default", "a")
    assert h.get("default", "a") == []
    assert texts(h.get("default", "b")) == ["y"]
    h.clear("default", "never-seen")  # no error
    h.append("default", "b", entry("z"), 0)
    assert h.get("default", "b") == []


def test_history_accounts_are_separate(store: Any) -> None:
    store.history.append("default", "k", entry("mine"), 5)
    store.history.append("work", "k", entry("theirs"), 5)
    assert texts(store.history.get("default", "k")) == ["mine"]
    assert texts(store.history.get("work", "k")) == ["theirs"]
    store.history.clear("work", "k")
    assert texts(store.history.get("default", "k")) == ["mine"]


def test_history_evicts_least_recently_used_conversation(make_store: MakeStore) -> None:
    h = make_store(max_conversations=2).history
    h.append("default", "a", entry("a1"), 5)
    h.append("default", "b", entry("b1"), 5)
    h.append("default", "a", entry("a2"), 5)  # a is now the most recent
    h.append("default", "c", entry("c1"), 5)  # evicts b
    assert h.get("default", "b") == []
    assert texts(h.get("default", "a")) == ["a1", "a2"]
    assert texts(h.get("default", "c")) == ["c1"]
    h.append("default", "b", entry("b2"), 5)  # back, fresh; evicts a
    assert texts(h.get("default", "b")) == ["b2"]
    assert h.get("default", "a") == []


def test_history_bound_is_per_account(make_store: MakeStore) -> None:
    h = make_store(max_conversations=2).history
    h.append("default", "a", entry("a"), 5)
    h.append("default", "b", entry("b"), 5)
    h.append("work", "x", entry("x"), 5)
    h.append("work", "y", entry("y"), 5)
    for acc, key in [("default", "a"), ("default", "b"), ("work", "x"), ("work", "y")]:
        assert h.get(acc, key) != [], (acc, key)


def test_history_default_bound_is_1000(make_store: MakeStore) -> None:
    h = make_store().history
    for i in range(1001):
        h.append("default", f"k{i}", entry(str(i)), 1)
    assert h.get("default", "k0") == []
    assert texts(h.get("default", "k1")) == ["1"]
    assert texts(h.get("default", "k1000")) == ["1000"]


def test_history_remove_takes_out_exactly_the_given_entries(store: Any) -> None:
    # (a group's history handed to a turn goes once the turn is taken; what was noted
    # meanwhile stays)
    h = store.history
    e = [entry(f"m{i}", T0 + i) for i in range(4)]
    for x in e:
        h.append("default", "room", x, 10)
    h.append("default", "other", e[0], 10)
    h.append("work", "room", e[0], 10)
    h.remove("default", "room", [e[0], e[2], entry("never kept")])
    assert h.get("default", "room") == [e[1], e[3]]
    assert h.get("default", "other") == [e[0]]  # other conversations, other accounts
    assert h.get("work", "room") == [e[0]]
    h.remove("default", "room", [])
    h.remove("default", "unknown", [e[1]])  # nothing to remove: no error
    h.remove("nobody", "room", [e[1]])
    assert h.get("default", "room") == [e[1], e[3]]
    later = entry("later", T0 + 9)
    h.append("default", "room", later, 3)  # in order after what is left, the limit kept
    assert h.get("default", "room") == [e[1], e[3], later]
    h.append("default", "room", entry("newest", T0 + 10), 3)
    assert texts(h.get("default", "room")) == ["m3", "later", "newest"]
    h.remove("default", "room", iter(h.get("default", "room")))  # (any iterable)
    assert h.get("default", "room") == []


def test_history_remove_is_no_use_and_what_it_empties_is_forgotten(make_store: MakeStore) -> None:
    h = make_store(max_conversations=2).history
    h.append("default", "a", entry("a1"), 5)
    h.append("default", "a", entry("a2"), 5)
    h.append("default", "b", entry("b1"), 5)
    h.remove("default", "a", [entry("a1")])  # no use: a is still appended to least recently
    h.append("default", "c", entry("c1"), 5)  # evicts a
    assert h.get("default", "a") == []
    assert texts(h.get("default", "b")) == ["b1"]
    h.remove("default", "b", [entry("b1")])  # emptied: forgotten, its place free
    h.append("default", "d", entry("d1"), 5)  # c and d: none evicted
    assert texts(h.get("default", "c")) == ["c1"]
    assert texts(h.get("default", "d")) == ["d1"]
    assert h.get("default", "b") == []


def test_a_history_removal_that_fails_changes_nothing(store: Any) -> None:
    h = store.history
    e = [entry(f"m{i}", T0 + i) for i in range(3)]
    for x in e:
        h.append("default", "room", x, 10)

    def handed() -> Iterator[HistoryEntry]:  # the caller fails half way
        yield e[0]
        raise ConnectionError("out of reach")

    with pytest.raises(ConnectionError):
        h.remove("default", "room", handed())
    assert h.get("default", "room") == e


class Outage:
    """A history store out of reach from its ``at``-th write on (Redis for a moment)."""

    def __init__(self, inner: Any, at: int) -> None:
        self.inner, self.at, self.writes = inner, at, 0

    def _write(self) -> None:
        self.writes += 1
        if self.writes >= self.at:
            raise ConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    def append(self, account_id: str, key: str, entry: HistoryEntry, limit: int) -> None:
        self._write()
        self.inner.append(account_id, key, entry, limit)

    def get(self, account_id: str, key: str) -> list[HistoryEntry]:
        return list(self.inner.get(account_id, key))

    def clear(self, account_id: str, key: str) -> None:
        self._write()
        self.inner.clear(account_id, key)

    def remove(self, account_id: str, key: str, entries: Any) -> None:
        self._write()
        self.inner.remove(account_id, key, entries)


@pytest.mark.parametrize("at", [1, 2])
def test_a_store_failing_as_a_group_turn_is_taken_loses_no_message(store: Any, at: int) -> None:
    # the store goes out of reach at some write of the clearing: the messages handed to
    # the turn are cleared or kept (handed again), the one noted after it began is kept
    room = "r1@chatroom"
    outage = Outage(store.history, at=99)
    book = HistoryBook(outage, "default", group_limit=10, dm_limit=10)
    handed_now = [entry(f"m{i}", T0 + i) for i in range(2)]
    for x in handed_now:
        book.note_unanswered(room, x)
    handed = book.group(room)
    later = entry("later", T0 + 5)
    book.note_unanswered(room, later)
    outage.at, outage.writes = at, 0
    with contextlib.suppress(ConnectionError):
        book.group_answered(room, handed)
    assert book.group(room) in ((*handed_now, later), (later,))


@pytest.mark.parametrize("at", [1, 2])
def test_a_store_failing_as_a_cut_reply_joins_its_turn_loses_no_message(
    store: Any, at: int
) -> None:
    # the rest of a reply a stop cut goes out after the restart and joins the part
    # recorded with its turn; the store goes out of reach at some write of that: the
    # earlier turns, the user's message and what went of the reply stay (the rest is
    # added, or not)
    outage = Outage(store.history, at=99)
    book = HistoryBook(outage, "default", group_limit=10, dm_limit=10)
    earlier = [entry("q1", T0), entry("a1", T0 + 1, role="assistant")]
    book.record_dm_turn("wxid_alice", earlier[0], earlier[1])
    asked, begun = entry("q2", T0 + 2), entry("first half", T0 + 3, role="assistant")
    book.record_dm_turn("wxid_alice", asked, begun)
    outage.at, outage.writes = at, 0
    with contextlib.suppress(ConnectionError):
        book.record_dm_reply("wxid_alice", entry("second half", T0 + 9, role="assistant"))
    got = [e.text for e in book.dm("wxid_alice")]
    assert got in (
        ["q1", "a1", "q2", "first half"],
        ["q1", "a1", "q2", "first half\n\nsecond half"],
        ["q1", "a1", "q2", "first half", "first half\n\nsecond half"],
    ), got


@pytest.mark.parametrize("at", [1, 2])
def test_a_store_failing_as_a_dm_history_is_trimmed_loses_no_newer_message(
    store: Any, at: int
) -> None:
    # a turn without a reply (the agent answered nothing) makes the history uneven: it is
    # read back and cut to the newest dm_limit user turns; the store goes out of reach at
    # some write of that cut: the newest turns stay
    outage = Outage(store.history, at=99)
    book = HistoryBook(outage, "default", group_limit=10, dm_limit=2)
    book.record_dm_turn("wxid_alice", entry("q1", T0), entry("a1", T0 + 1, role="assistant"))
    book.record_dm_turn("wxid_alice", entry("q2", T0 + 2), None)
    outage.at, outage.writes = at + 1, 0  # (the turn's own append first)
    with contextlib.suppress(ConnectionError):
        book.record_dm_turn("wxid_alice", entry("q3", T0 + 3), None)
    got = [e.text for e in book.dm("wxid_alice")]
    assert got[-2:] == ["q2", "q3"], got


# --- dedupe -----------------------------------------------------------------------------


def test_text_utf8_cannot_encode_is_kept_not_refused(store: Any) -> None:
    # half an emoji (a lone surrogate, as a cut JSON escape gives) from a peer: every
    # store takes it (the SQLite and Redis ones keep "?" in its place), never an error
    # that would leave the message unanswered
    half = "half \ud83d emoji"
    store.history.append("default", "wxid_alice", entry(half), 10)
    (kept_entry,) = store.history.get("default", "wxid_alice")
    assert kept_entry.text in (half, "half ? emoji")
    assert store.dedupe.check_and_add("default", "m\ud83d", T0, 60, claim="c") is False
    assert store.dedupe.check_and_add("default", "m\ud83d", T0 + 1, 60, claim="d") is True
    (added,) = store.outbox.add([kept(half)])
    assert store.outbox.items("default")[0].text in (half, "half ? emoji")
    store.outbox.delete(added.id)


def test_dedupe_within_ttl(store: Any) -> None:
    d = store.dedupe
    assert d.check_and_add("default", "m1", T0, 60) is False
    assert d.check_and_add("default", "m1", T0 + 59, 60) is True
    # A duplicate does not extend the window: 60 s after the first sighting it is new.
    assert d.check_and_add("default", "m1", T0 + 60, 60) is False
    assert d.check_and_add("default", "m1", T0 + 61, 60) is True
    assert d.check_and_add("default", "m2", T0 + 61, 60) is False


def test_a_check_asked_again_with_its_claim_is_not_its_own_duplicate(store: Any) -> None:
    """A check whose answer was lost after the store recorded the mark (a timeout from
    Redis after its script ran), asked again with the same claim, is not a duplicate;
    another claim's check, or one without a claim, is; the mark keeps its first time."""
    d = store.dedupe
    assert d.check_and_add("default", "m1", T0, 60, "try-a") is False
    assert d.check_and_add("default", "m1", T0 + 5, 60, "try-a") is False
    assert d.check_and_add("default", "m1", T0 + 6, 60, "try-b") is True
    assert d.check_and_add("default", "m1", T0 + 7, 60) is True
    assert d.check_and_add("work", "m1", T0 + 8, 60, "try-b") is False  # (another account)
    assert d.check_and_add("default", "m1", T0 + 59, 60, "try-b") is True
    assert d.check_and_add("default", "m1", T0 + 60, 60, "try-b") is False  # (its window)
    assert d.check_and_add("default", "m1", T0 + 61, 60, "try-a") is True  # (now try-b's)
    assert d.check_and_add("default", "m2", T0, 60) is False
    assert d.check_and_add("default", "m2", T0 + 1, 60) is True  # (no claim: none matches)


def test_a_claim_goes_with_its_mark_when_the_bound_forgets_it(make_store: MakeStore) -> None:
    d = make_store(dedupe_max_entries=2).dedupe
    assert d.check_and_add("default", "m1", T0, 3600, "a") is False
    d.check_and_add("default", "m2", T0 + 1, 3600, "b")
    d.check_and_add("default", "m3", T0 + 2, 3600, "c")  # m1 forgotten
    assert d.check_and_add("default", "m1", T0 + 3, 3600, "d") is False
    assert d.check_and_add("default", "m1", T0 + 4, 3600, "a") is True


def test_dedupe_accounts_are_separate(store: Any) -> None:
    assert store.dedupe.check_and_add("default", "m1", T0, 60) is False
    assert store.dedupe.check_and_add("work", "m1", T0, 60) is False
    assert store.dedupe.check_and_add("work", "m1", T0, 60) is True


def test_dedupe_is_bounded_oldest_evicted(make_store: MakeStore) -> None:
    d = make_store(dedupe_max_entries=3).dedupe
    for i in range(1, 5):
        assert d.check_and_add("default", f"m{i}", T0 + i, 3600) is False
    assert d.check_and_add("default", "m4", T0 + 10, 3600) is True
    assert d.check_and_add("default", "m3", T0 + 10, 3600) is True
    assert d.check_and_add("default", "m2", T0 + 10, 3600) is True
    assert d.check_and_add("default", "m1", T0 + 10, 3600) is False  # was evicted


def test_an_hour_of_more_than_ten_thousand_messages_keeps_every_mark(store: Any) -> None:
    """Marks go by age (the dedupe window: an hour); the default bound is only memory's
    safety, far above what an account takes in an hour. Under a bound of 10,000 an
    account taking more within the hour lost the marks of its first messages, and iLink,
    which hands on the messages of the last hour again at a start, had them answered
    twice."""
    d = store.dedupe
    for i in range(10_001):
        assert d.check_and_add("default", f"m{i}", T0 + i * 0.3, 3600) is False
    later = T0 + 3001  # within the hour of the first
    assert d.check_and_add("default", "m0", later, 3600) is True
    assert d.check_and_add("default", "m1", later, 3600) is True


def test_dedupe_bound_is_per_account(make_store: MakeStore) -> None:
    d = make_store(dedupe_max_entries=2).dedupe
    d.check_and_add("default", "a", T0, 3600)
    d.check_and_add("default", "b", T0, 3600)
    d.check_and_add("work", "x", T0, 3600)
    d.check_and_add("work", "y", T0, 3600)
    assert d.check_and_add("default", "a", T0 + 1, 3600) is True
    assert d.check_and_add("default", "b", T0 + 1, 3600) is True


# --- outbox -----------------------------------------------------------------------------


def kept(
    text: str | None = "chunk",
    account: str = "default",
    conversation: str = "wxid_alice",
    **fields: Any,
) -> OutboxItem:
    return OutboxItem(
        account_id=account,
        conversation_id=conversation,
        kind=fields.pop("kind", "text"),
        created_at=fields.pop("created_at", T0),
        text=text,
        **fields,
    )


def test_every_store_is_a_store_and_a_bundle_without_durability_is_not(store: Any) -> None:
    assert isinstance(store, Store)

    class OldStore:  # what users wrote before the outbox and the marks were the port's
        pairing = store.pairing
        history = store.history
        dedupe = store.dedupe

        def close(self) -> None:
            pass

    assert not isinstance(OldStore(), Store)


def test_outbox_round_trips_every_kind_of_item(store: Any, tmp_path: Path) -> None:
    items = [
        kept("Hello @Alice, first part", mention_ids=("wxid_alice", "wxid_bob"), dm=False),
        kept(
            None,
            kind="file",
            file=OutboundFile(
                name="voice.silk",
                kind="audio",
                data=b"\x00\x01\xffbytes",
                mime="audio/silk",
                duration_s=3.5,
            ),
        ),
        kept(
            None,
            kind="file",
            file=OutboundFile(name="a.png", kind="image", path=tmp_path / "a.png"),
        ),
        kept(None, kind="file", file=OutboundFile(name="r.pdf", url="https://example.com/r.pdf")),
        kept(None, kind="turn", turn='{"format": 1, "text": "\u4f60\u597d"}', dm=True),
        kept("Pairing code: ABCD2345", conversation="wxid_kim", pairing_code="ABCD2345"),
        kept("part 10\n\n(more after your next message)", notice=True),
    ]
    added = store.outbox.add(items)
    assert [a.id for a in added] == sorted(a.id for a in added)
    assert len({a.id for a in added}) == 7 and all(a.id > 0 for a in added)
    assert all(a.state == "pending" for a in added)
    assert [replace(a, id=0) for a in added] == items
    assert store.outbox.items("default") == added


def test_outbox_adds_each_item_in_the_state_it_was_given(store: Any) -> None:
    # "waiting": a message a reply window did not take, for the user's next message;
    # "sending": the message with the puppet when a stop journals its reply
    added = store.outbox.add(
        [replace(kept("a"), state="waiting"), replace(kept("b"), state="sending"), kept("c")]
    )
    assert [a.state for a in added] == ["waiting", "sending", "pending"]
    assert store.outbox.items("default") == added
    store.outbox.set_state(added[0].id, "sending")
    store.outbox.set_state(added[0].id, "waiting")  # a cut send that did not go out
    assert store.outbox.items("default")[0].state == "waiting"


def test_outbox_items_are_per_account_and_in_the_order_added(store: Any) -> None:
    outbox = store.outbox
    first = outbox.add([kept("1"), kept("2")])
    other = outbox.add([kept("w", account="work")])
    later = outbox.add([kept("3", conversation="r1@chatroom"), kept("4")])
    assert [i.text for i in outbox.items("default")] == ["1", "2", "3", "4"]
    assert outbox.items("work") == other
    assert outbox.items("nobody") == []
    assert outbox.add([]) == []
    # a later item always comes after, even once the earlier ones are gone
    for item in first:
        assert outbox.delete(item.id) is True
    newest = outbox.add([kept("5")])
    assert newest[0].id > later[-1].id
    assert [i.text for i in outbox.items("default")] == ["3", "4", "5"]


def test_outbox_state_marks_an_item_being_sent(store: Any) -> None:
    outbox = store.outbox
    a, b = outbox.add([kept("a"), kept("b")])
    outbox.set_state(a.id, "sending")
    assert [(i.text, i.state) for i in outbox.items("default")] == [
        ("a", "sending"),
        ("b", "pending"),
    ]
    outbox.set_state(a.id, "pending")
    assert outbox.items("default")[0].state == "pending"
    outbox.set_state(12345, "sending")  # an unknown id changes nothing
    assert outbox.items("default") == [a, b]


def test_outbox_delete_forgets_an_item_once(store: Any) -> None:
    outbox = store.outbox
    a, b = outbox.add([kept("a"), kept("b")])
    assert outbox.delete(a.id) is True
    assert outbox.delete(a.id) is False
    assert outbox.items("default") == [b]


def test_outbox_replace_swaps_items_in_one_write(store: Any) -> None:
    """Some items out and others in, in one step (a reply's rows swapped for the ones its
    delivery planned): the new ones after every item there, in their order and states."""
    outbox = store.outbox
    a, _, c = outbox.add([kept("a"), kept("b"), kept("c")])
    other = outbox.add([kept("w", account="work")])
    new = outbox.replace([a, c], [kept("ac"), kept("later", state="waiting")])
    assert [i.text for i in new] == ["ac", "later"] and new[0].id > c.id < new[1].id
    assert [(i.text, i.state) for i in outbox.items("default")] == [
        ("b", "pending"),
        ("ac", "pending"),
        ("later", "waiting"),
    ]
    assert outbox.items("work") == other
    assert outbox.replace([new[1]], []) == [] and outbox.delete(new[1].id) is False
    assert outbox.replace([], []) == []
    assert [i.text for i in outbox.items("default")] == ["b", "ac"]


# --- dedupe marks: position and durability ----------------------------------------------


def test_the_mark_position_covers_every_mark_recorded_and_never_decreases(store: Any) -> None:
    positions = [store.mark_position()]
    for i in range(5):
        assert store.dedupe.check_and_add("default", f"m{i}", T0, 3600) is False
        positions.append(store.mark_position())
    store.dedupe.check_and_add("default", "m0", T0 + 1, 3600)  # a duplicate: not recorded
    store.dedupe.check_and_add("work", "m0", T0 + 1, 3600)
    positions.append(store.mark_position())
    assert positions == sorted(positions)
    # each new mark moves it on: a reply's position is never covered before its mark is
    assert len(set(positions[:6])) == 6


async def test_marks_durable_returns_for_any_position_and_callers_at_once(store: Any) -> None:
    import asyncio

    await store.marks_durable(None)  # nothing recorded yet
    store.dedupe.check_and_add("default", "m1", T0, 3600)
    first = store.mark_position()
    store.dedupe.check_and_add("default", "m2", T0, 3600)
    await asyncio.wait_for(store.marks_durable(first), 5)
    store.dedupe.check_and_add("default", "m3", T0, 3600)
    await asyncio.wait_for(
        asyncio.gather(
            store.marks_durable(store.mark_position()),
            store.marks_durable(first),
            store.marks_durable(None),
        ),
        5,
    )
    await store.marks_durable(store.mark_position())  # durable already
    # the marks still work as the dedupe window afterwards
    assert store.dedupe.check_and_add("default", "m2", T0 + 1, 3600) is True


async def test_marks_durable_on_a_virtual_clock_needs_no_real_time(make_store: MakeStore) -> None:
    """The gateway on the simulator's clock: a send waiting for its mark must not wait for
    anything the virtual world cannot see."""
    import asyncio

    from wechat_sdk.clock import VirtualClock

    store = make_store(clock=VirtualClock())
    store.dedupe.check_and_add("default", "m1", T0, 3600)
    waiting = asyncio.ensure_future(store.marks_durable(store.mark_position()))
    await asyncio.sleep(0)  # one turn of the loop: nothing left running in a thread
    assert waiting.done() and waiting.exception() is None


# --- the webhook queue ----------------------------------------------------------------------


def delivery(n: int, endpoint: str = "https://a.example/hook", due: float = T0) -> Any:
    from wechat_sdk.stores import WebhookDelivery

    return WebhookDelivery(
        endpoint=endpoint,
        message_id=f"msg_{n}",
        event_type="message.received",
        body=f'{{"n": {n}, "text": "你好"}}',
        created_at=T0,
        next_attempt_at=due,
    )


def test_webhook_queue_round_trips_and_gives_ids_in_order(store: Any) -> None:
    added = store.webhooks.add([delivery(1), delivery(2)])
    assert [d.id for d in added] == sorted(d.id for d in added)
    assert added[0].id > 0 and added[0] == replace(delivery(1), id=added[0].id)
    assert store.webhooks.pending() == added
    assert store.webhooks.pending("https://a.example/hook") == added
    assert store.webhooks.pending("https://other.example/") == []


def test_webhook_queue_due_is_per_endpoint_earliest_first(store: Any) -> None:
    late, early, other = store.webhooks.add(
        [delivery(1, due=T0 + 60), delivery(2, due=T0 + 5), delivery(3, "https://b.example/")]
    )
    assert store.webhooks.due("https://a.example/hook", T0) == []
    assert store.webhooks.due("https://a.example/hook", T0 + 5) == [early]
    assert store.webhooks.due("https://a.example/hook", T0 + 60) == [early, late]
    assert store.webhooks.due("https://a.example/hook", T0 + 60, limit=1) == [early]
    assert store.webhooks.due("https://b.example/", T0) == [other]
    assert store.webhooks.next_attempt_at("https://a.example/hook") == T0 + 5
    assert store.webhooks.next_attempt_at("https://nobody.example/") is None


def test_webhook_retry_later_keeps_the_message_id_and_moves_the_due_time(store: Any) -> None:
    (d,) = store.webhooks.add([delivery(1)])
    store.webhooks.retry_later(d.id, attempts=1, next_attempt_at=T0 + 5, last_error="HTTP 503")
    assert store.webhooks.due(d.endpoint, T0) == []
    (again,) = store.webhooks.due(d.endpoint, T0 + 5)
    assert (again.message_id, again.body, again.attempts, again.last_error) == (
        "msg_1",
        d.body,
        1,
        "HTTP 503",
    )


def test_webhook_claim_due_gives_what_is_due_earliest_first_ties_in_the_order_added(
    store: Any,
) -> None:
    # a dozen at one time: ids 9 and 10 and on must come in the order added, not as text
    added = store.webhooks.add([delivery(n, due=T0) for n in range(12)])
    (late,) = store.webhooks.add([delivery(99, due=T0 - 1)])  # added last, due first
    assert store.webhooks.claim_due("https://a.example/hook", T0 - 2, hold_s=30) == []
    claimed = store.webhooks.claim_due("https://a.example/hook", T0, hold_s=30, limit=20)
    assert claimed == [late, *added]
    # (what a claim holds back on a shared queue: tests/unit/test_webhook_claims.py)


def test_a_claimed_delivery_is_due_at_once_after_a_failed_attempt_or_gone_when_deleted(
    store: Any,
) -> None:
    first, second = store.webhooks.add([delivery(1), delivery(2)])
    (claimed,) = store.webhooks.claim_due(first.endpoint, T0, hold_s=30)
    assert claimed == first
    store.webhooks.retry_later(first.id, attempts=1, next_attempt_at=T0 + 5, last_error="HTTP 503")
    assert store.webhooks.delete(second.id) is True
    assert store.webhooks.next_attempt_at(first.endpoint) == T0 + 5  # the retry's time
    (again,) = store.webhooks.claim_due(first.endpoint, T0 + 5, hold_s=30)
    assert (again.id, again.attempts) == (first.id, 1)


def test_webhook_delete_forgets_a_delivery_once(store: Any) -> None:
    (d,) = store.webhooks.add([delivery(1)])
    assert store.webhooks.delete(d.id) is True
    assert store.webhooks.delete(d.id) is False
    assert store.webhooks.pending() == []


def test_webhook_delete_endpoint_forgets_that_endpoints_deliveries_only(store: Any) -> None:
    # (its endpoint answered 410 Gone): the one under way (claimed) goes too, and a
    # failed attempt recorded after cannot bring it back
    first, _, other = store.webhooks.add(
        [delivery(1), delivery(2, due=T0 + 60), delivery(3, "https://b.example/")]
    )
    (claimed,) = store.webhooks.claim_due(first.endpoint, T0, hold_s=30)
    assert store.webhooks.delete_endpoint(first.endpoint) == 2
    store.webhooks.retry_later(claimed.id, attempts=1, next_attempt_at=T0 + 5, last_error="x")
    assert store.webhooks.pending() == [other]
    assert store.webhooks.next_attempt_at(first.endpoint) is None
    assert store.webhooks.claim_due(first.endpoint, T0 + 3600, hold_s=30) == []
    assert store.webhooks.delete_endpoint(first.endpoint) == 0
    (later,) = store.webhooks.add([delivery(4)])  # queued again afterwards: kept
    assert store.webhooks.pending(first.endpoint) == [later]


def test_webhook_count_is_per_endpoint_claimed_and_retried_ones_included(store: Any) -> None:
    first, second, _ = store.webhooks.add(
        [delivery(1), delivery(2, due=T0 + 60), delivery(3, "https://b.example/")]
    )
    assert store.webhooks.count(first.endpoint) == 2
    assert store.webhooks.count("https://b.example/") == 1
    assert store.webhooks.count("https://nobody.example/") == 0
    (claimed,) = store.webhooks.claim_due(first.endpoint, T0, hold_s=30)
    store.webhooks.retry_later(claimed.id, attempts=1, next_attempt_at=T0 + 5, last_error="x")
    assert store.webhooks.count(first.endpoint) == 2  # under way or waiting: still queued
    store.webhooks.delete(second.id)
    assert store.webhooks.count(first.endpoint) == 1
    store.webhooks.delete_endpoint(first.endpoint)
    assert store.webhooks.count(first.endpoint) == 0
    assert store.webhooks.count("https://b.example/") == 1


# --- idempotency keys -------------------------------------------------------------------------


def test_an_idempotency_key_is_claimed_once_and_its_answer_kept(store: Any) -> None:
    assert store.idempotency.claim("k1", "fp", T0) is None
    in_progress = store.idempotency.claim("k1", "fp", T0 + 1)
    assert in_progress is not None and in_progress.status is None
    assert (in_progress.fingerprint, in_progress.created_at) == ("fp", T0)
    store.idempotency.finish("k1", 200, '{"sent": 1}')
    done = store.idempotency.claim("k1", "other", T0 + 2)
    assert done is not None
    assert (done.fingerprint, done.status, done.response) == ("fp", 200, '{"sent": 1}')


def test_a_released_key_can_be_claimed_again_and_old_keys_are_purged(store: Any) -> None:
    store.idempotency.claim("k1", "fp", T0)
    store.idempotency.release("k1")
    assert store.idempotency.claim("k1", "fp2", T0 + 10) is None
    store.idempotency.claim("k2", "fp", T0 + 100)
    assert store.idempotency.purge(T0 + 50) == 1
    assert store.idempotency.claim("k1", "fp", T0 + 200) is None  # forgotten: new again
    known = store.idempotency.claim("k2", "fp", T0 + 200)
    assert known is not None and known.created_at == T0 + 100
