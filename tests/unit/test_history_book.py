"""DM history kept in whole turns, with the read-back skipped when it cannot matter."""

from __future__ import annotations

import pytest
from history_stores import StoreOfOld
from hypothesis import given
from hypothesis import strategies as st

from wechat_sdk.agent import HistoryEntry
from wechat_sdk.inbound.history import HistoryBook, HistoryLost, dm_key, group_key
from wechat_sdk.stores.memory import MemoryHistoryStore


def reference(turns: list[bool], limit: int) -> list[tuple[str, str]]:
    """The rule as first written: append both, read back, trim to whole turns if needed."""
    store = MemoryHistoryStore()
    key = dm_key("wxid_a")
    for i, replied in enumerate(turns):
        store.append("default", key, HistoryEntry("user", "a", "A", f"u{i}", 0.0), 2 * limit)
        if replied:
            store.append(
                "default", key, HistoryEntry("assistant", "b", "B", f"a{i}", 0.0), 2 * limit
            )
        entries = store.get("default", key)
        users = [e for e in entries if e.role == "user"]
        if len(users) > limit:
            keep = entries[entries.index(users[len(users) - limit]) :]
            store.clear("default", key)
            for e in keep:
                store.append("default", key, e, 2 * limit)
    return [(e.role, e.text) for e in store.get("default", key)]


@given(st.lists(st.booleans(), max_size=30), st.integers(min_value=1, max_value=4))
def test_record_dm_turn_trims_exactly_as_before(turns: list[bool], limit: int) -> None:
    store = MemoryHistoryStore()
    book = HistoryBook(store, "default", group_limit=0, dm_limit=limit)
    for i, replied in enumerate(turns):
        user = HistoryEntry("user", "wxid_a", "A", f"u{i}", float(i), f"m{i}")
        reply = HistoryEntry("assistant", "bot", "Bot", f"a{i}", float(i)) if replied else None
        book.record_dm_turn("wxid_a", user, reply)
        got = [(e.role, e.text) for e in store.get("default", dm_key("wxid_a"))]
        assert got == reference(turns[: i + 1], limit)


def test_a_limit_of_zero_deletes_what_an_earlier_limit_kept_at_the_next_message() -> None:
    # history kept while the limits were 10, then both set to 0: "keeps no history at all"
    store = MemoryHistoryStore()
    before = HistoryBook(store, "default", group_limit=10, dm_limit=10)
    before.record_dm_turn("wxid_a", HistoryEntry("user", "wxid_a", "A", "my secret", 1.0), None)
    before.note_unanswered("r1@chatroom", HistoryEntry("user", "wxid_b", "B", "psst", 1.0))
    after = HistoryBook(store, "default", group_limit=0, dm_limit=0)
    assert after.dm("wxid_a") == () and after.group("r1@chatroom") == ()
    assert store.get("default", dm_key("wxid_a")) == []
    assert store.get("default", group_key("r1@chatroom")) == []


class CountingStore(MemoryHistoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.deletes: list[str] = []

    def clear(self, account_id: str, key: str) -> None:
        self.deletes.append(key)
        super().clear(account_id, key)


def test_a_limit_of_zero_deletes_a_conversations_history_once() -> None:
    # (on Redis each delete is a round trip: one a message would cost every DM turn)
    store = CountingStore()
    book = HistoryBook(store, "default", group_limit=0, dm_limit=0)
    for _ in range(3):
        book.dm("wxid_a")
        book.group("r1@chatroom")
    assert store.deletes == [dm_key("wxid_a"), group_key("r1@chatroom")]


def test_a_group_history_stays_until_its_turn_is_taken_and_only_what_it_was_handed_goes() -> None:
    # read for a turn the store may yet refuse (tried again: it needs it again); a message
    # noted after the read is for the next answer
    store = MemoryHistoryStore()
    book = HistoryBook(store, "default", group_limit=10, dm_limit=10)
    before = HistoryEntry("user", "wxid_b", "B", "the meeting moved", 1.0, "m1")
    book.note_unanswered("r1@chatroom", before)
    handed = book.group("r1@chatroom")
    assert handed == (before,) and book.group("r1@chatroom") == (before,)
    later = HistoryEntry("user", "wxid_c", "C", "to 3pm", 2.0, "m3")
    book.note_unanswered("r1@chatroom", later)
    book.group_answered("r1@chatroom", handed)
    assert book.group("r1@chatroom") == (later,)


def test_what_was_handed_goes_even_when_the_limit_dropped_some_of_it_meanwhile() -> None:
    # the turn was handed the three kept; a fourth noted since pushed the oldest out: the
    # handed ones left go, the fourth stays (not "the first three")
    store = MemoryHistoryStore()
    book = HistoryBook(store, "default", group_limit=3, dm_limit=10)
    said = [HistoryEntry("user", "wxid_b", "B", f"m{i}", float(i), f"m{i}") for i in range(4)]
    for e in said[:3]:
        book.note_unanswered("r1@chatroom", e)
    handed = book.group("r1@chatroom")
    book.note_unanswered("r1@chatroom", said[3])
    book.group_answered("r1@chatroom", handed)
    assert book.group("r1@chatroom") == (said[3],)


def test_a_store_without_remove_is_cleared_as_before_and_says_what_a_failure_lost() -> None:
    store = StoreOfOld()
    book = HistoryBook(store, "default", group_limit=10, dm_limit=10)
    before = HistoryEntry("user", "wxid_b", "B", "the meeting moved", 1.0, "m1")
    later = HistoryEntry("user", "wxid_c", "C", "to 3pm", 2.0, "m3")
    book.note_unanswered("r1@chatroom", before)
    handed = book.group("r1@chatroom")
    book.note_unanswered("r1@chatroom", later)
    book.group_answered("r1@chatroom", handed)  # read, cleared, the rest appended again
    assert book.group("r1@chatroom") == (later,)

    handed = book.group("r1@chatroom")
    newest = HistoryEntry("user", "wxid_c", "C", "room 2", 3.0, "m4")
    book.note_unanswered("r1@chatroom", newest)
    store.down = True  # cleared, then out of reach: the newest cannot be put back
    with pytest.raises(HistoryLost) as lost:
        book.group_answered("r1@chatroom", handed)
    assert lost.value.lost == 1
    assert isinstance(lost.value.__cause__, ConnectionError)
    assert book.group("r1@chatroom") == ()
