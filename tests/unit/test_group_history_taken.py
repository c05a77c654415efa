"""A group turn taken while the store fails to clear the history it was handed: the
warning says what became of it, and is true: with a store that removes entries (every
store of wechat-sdk) the whole history is kept and handed again with the next answer;
with a store of old (no remove()) it says how many messages noted since were lost."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from history_stores import StoreOfOld
from stub_turns import stub_turns

from wechat_sdk.agent import AgentTurn, HistoryEntry
from wechat_sdk.gateway.turns import Turns
from wechat_sdk.inbound.history import HistoryBook
from wechat_sdk.stores.memory import MemoryHistoryStore

ROOM = "r1@chatroom"


class Flaky(MemoryHistoryStore):
    """Out of reach from its ``at``-th write on (Redis for a moment), once armed."""

    def __init__(self) -> None:
        super().__init__()
        self.at: int | None = None
        self.writes = 0

    def _check(self) -> None:
        if self.at is not None:
            self.writes += 1
            if self.writes >= self.at:
                raise ConnectionError("Connection refused")

    def append(self, account_id: str, key: str, entry: HistoryEntry, limit: int) -> None:
        self._check()
        super().append(account_id, key, entry, limit)

    def clear(self, account_id: str, key: str) -> None:
        self._check()
        super().clear(account_id, key)

    def remove(self, account_id: str, key: str, entries: Any) -> None:
        self._check()
        super().remove(account_id, key, entries)


def turns(book: HistoryBook) -> Turns:
    return stub_turns(history=book)


def said(n: int) -> HistoryEntry:
    return HistoryEntry("user", "wxid_b", "B", f"said {n}", float(n), f"m{n}")


def taken(book: HistoryBook) -> AgentTurn:
    """A mention answered in the room, handed its history; one more message noted after."""
    book.note_unanswered(ROOM, said(1))
    book.note_unanswered(ROOM, said(2))
    turn = AgentTurn(
        "default", "group", "wxid_a", "A", "@bot hi", room_id=ROOM, history=book.group(ROOM)
    )
    book.note_unanswered(ROOM, said(3))
    return turn


@pytest.mark.parametrize("at", [1, 2])
def test_what_the_warning_says_of_a_store_that_fails_as_a_turn_is_taken_is_true(
    at: int, caplog: pytest.LogCaptureFixture
) -> None:
    store = Flaky()
    book = HistoryBook(store, "default", group_limit=10, dm_limit=10)
    turn = taken(book)
    store.at = at  # out of reach from this write of the clearing on
    with caplog.at_level(logging.WARNING, logger="test.turns"):
        turns(book)._group_history_taken(turn)
    store.at = None
    if "reason=history_failed" in caplog.text:
        assert "could not clear the history of group r1@chatroom" in caplog.text
        assert "(handed to the agent again with its next answer)" in caplog.text
        assert book.group(ROOM) == (said(1), said(2), said(3))  # true: all of it kept
    else:  # cleared: what was handed went, the one noted since stays
        assert book.group(ROOM) == (said(3),)


def test_a_store_without_remove_that_fails_after_its_clear_says_what_was_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = StoreOfOld()
    book = HistoryBook(store, "default", group_limit=10, dm_limit=10)
    turn = taken(book)
    store.down = True
    with caplog.at_level(logging.WARNING, logger="test.turns"):
        turns(book)._group_history_taken(turn)
    assert book.group(ROOM) == ()
    assert "handed to the agent again" not in caplog.text
    assert "could not put back the history of group r1@chatroom" in caplog.text
    assert "1 message(s) noted after its turn began lost" in caplog.text
    assert "reason=history_failed" in caplog.text
