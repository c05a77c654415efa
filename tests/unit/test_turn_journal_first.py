"""On an account held by lease, a turn stands for its message only once its journal is in
the store: when that write failed, the message's own entry is kept (taken in again at the
next start), and the turn is not answered now: never answered twice, never lost."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from stub_turns import stub_turns

from wechat_sdk.agent import AgentTurn
from wechat_sdk.gateway.turns import Turns
from wechat_sdk.stores.base import LeaseLost, OutboxItem


class Journal:
    def __init__(self, written: bool) -> None:
        self._written = written

    def written(self) -> bool:
        return self._written

    def answered(self) -> None: ...

    def cut(self) -> None: ...

    def close(self) -> None: ...


class Cut:
    """The outbox room: its turn journal written or not; notes the messages taken out."""

    def __init__(self, journal_written: bool) -> None:
        self.journal_written = journal_written
        self.taken_out: list[OutboxItem] = []
        self.texts_journaled: list[tuple[str, str, bool]] = []

    def journal(self, turn: AgentTurn, progress: Any) -> Journal:
        return Journal(self.journal_written)

    def journal_text(self, to: str, progress: Any) -> Journal:
        # (the journal writes the text's messages from progress.reply at once: see the
        # stop scenarios, test_stop_keeps_work.py)
        self.texts_journaled.append((to, progress.reply.text, progress.plan.began))
        return Journal(self.journal_written)

    def message_done(self, item: OutboxItem) -> bool:
        self.taken_out.append(item)
        return True

    def keep_cut_turn(self, *a: Any) -> None: ...

    def keep_text(self, *a: Any) -> None: ...

    async def send_waiting(self, *a: Any) -> None: ...


def turns(cut: Cut) -> Turns:
    return stub_turns(cut=cut, journal_every_turn=True)


TURN = AgentTurn("default", "direct", "wxid_alice", "Alice", "hi", message_id="m-1")
MESSAGE = OutboxItem("default", "wxid_alice", "message", 0.0, turn="m-1", id=7)


async def test_a_turn_whose_journal_did_not_reach_the_store_leaves_its_message_journaled() -> None:
    cut = Cut(journal_written=False)
    t = turns(cut)
    t.answer(TURN, lambda: 1, MESSAGE)
    assert cut.taken_out == []  # its entry stays: the next start takes it in again
    assert not t.tasks  # and it is not answered now


async def test_a_turn_whose_journal_is_in_the_store_takes_its_message_out() -> None:
    cut = Cut(journal_written=True)
    t = turns(cut)
    t.answer(TURN, lambda: 1, MESSAGE)
    assert cut.taken_out == [MESSAGE]
    assert len(t.tasks) == 1
    for task in t.tasks:
        task.cancel()


async def test_a_pairing_code_is_journaled_as_it_is_queued() -> None:
    # the gateway that takes the account over after a kill -9 sends it: not lost
    cut = Cut(journal_written=True)
    t = turns(cut)
    t.send_soon("wxid_stranger", "Pairing code: ABCD2345")
    assert cut.texts_journaled == [("wxid_stranger", "Pairing code: ABCD2345", False)]
    for task in t.tasks:
        task.cancel()


class LeaseGone(Cut):
    async def send_waiting(self, *a: Any, **k: Any) -> None:
        raise LeaseLost("default", "outbox write")


class Waiting:
    def has(self, conversation_id: str) -> bool:
        return True


async def test_what_waits_let_go_by_a_message_not_answered_ends_quietly_on_a_lost_lease() -> None:
    """Another gateway took the account over while what waited for a stranger went out:
    the task ends (as a turn's does: the stop says so), not with the error, which no one
    awaits (asyncio printed 'Task exception was never retrieved' with its traceback)."""
    t = turns(LeaseGone(journal_written=True))
    t.outbound = SimpleNamespace(waiting=Waiting())  # type: ignore[assignment]
    t.send_waiting_soon("wxid_stranger")
    (task,) = t.tasks
    await asyncio.wait([task])
    assert not task.cancelled()
    assert task.exception() is None
