"""How a stop's journal keeps a turn: a kept turn asked again after a restart, answered
(nothing planned to send yet), then cut by another stop leaves the outbox, its reply
standing for it (it was left ``sending``, and the next start dropped it with a crash's
warning); a whole reply is written as soon as it is known."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from wechat_sdk.agent import AgentTurn, ToolRegistry
from wechat_sdk.clock import VirtualClock
from wechat_sdk.gateway.kept import KeptWork
from wechat_sdk.gateway.outbox import kept_turn
from wechat_sdk.gateway.turns import TurnProgress
from wechat_sdk.stores import MemoryStore

TURN = AgentTurn("default", "direct", "wxid_alice", "Alice", "hi", message_id="m-1")


class Recording:
    """The turns' side a cut tells: the DM history it records."""

    def __init__(self) -> None:
        self.recorded: list[Any] = []

    def record_dm(self, turn: AgentTurn, parts: list[str]) -> None:
        self.recorded.append((turn.message_id, parts))


def test_a_kept_turn_answered_with_nothing_to_send_yet_and_cut_leaves_no_item() -> None:
    store = MemoryStore()
    kept = KeptWork(
        account_id="default",
        outbox=store.outbox,
        outbound=Any,  # type: ignore[arg-type]  # (not asked: the reply is not a whole one)
        history=Any,  # type: ignore[arg-type]
        tools=Any,  # type: ignore[arg-type]
        recheck=lambda turn: turn,
        clock=VirtualClock(),
        log=logging.LoggerAdapter(logging.getLogger("test")),
    )
    (item,) = store.outbox.add([kept_turn(TURN, 0.0)])
    store.outbox.set_state(item.id, "sending")  # as _rerun marks it while the agent runs
    progress = TurnProgress(kept=item, answered=True)
    progress.journal = kept.journal(TURN, progress)  # the stop begins
    turns = Recording()
    kept.keep_cut_turn(TURN, progress, turns)  # type: ignore[arg-type]
    assert store.outbox.items("default") == []
    assert turns.recorded == [("m-1", [])]


class Chunking:
    """The outbound's side a journal asks: a reply's messages, one per line; a reply
    window (iLink) or none."""

    waiting = None

    def __init__(self, window: Any = None) -> None:
        self._window = window

    def window(self, conversation_id: str) -> Any:
        return self._window

    def messages(self, reply: Any) -> list[Any]:
        from wechat_sdk.outbound.pipeline import OutboundMessage

        return [OutboundMessage(line) for line in reply.text.split("\n")]


def journaling(store: MemoryStore, window: Any = None) -> KeptWork:
    return KeptWork(
        account_id="default",
        outbox=store.outbox,
        outbound=Chunking(window),  # type: ignore[arg-type]
        history=Any,  # type: ignore[arg-type]
        tools=ToolRegistry(),
        recheck=lambda turn: turn,
        clock=VirtualClock(),
        log=logging.LoggerAdapter(logging.getLogger("test")),
    )


def test_a_reply_journaled_before_its_delivery_planned_it_is_written_once() -> None:
    """The stop journals a whole reply still waiting for its conversation; when its
    delivery then plans the same messages, they take the rows over (no second write);
    planned otherwise (a reply window packed them), the rows are replaced."""
    from wechat_sdk.agent import Reply
    from wechat_sdk.outbound.pipeline import OutboundMessage

    for planned, texts in [
        ([OutboundMessage("one"), OutboundMessage("two")], ["one", "two"]),
        ([OutboundMessage("one\n\ntwo")], ["one\n\ntwo"]),
    ]:
        store = MemoryStore()
        progress = TurnProgress(answered=True, reply=Reply(text="one\ntwo"))
        journal = journaling(store).journal(TURN, progress)
        early = store.outbox.items("default")
        assert [i.text for i in early] == ["one", "two"]
        assert journal.unplanned() == [OutboundMessage("one"), OutboundMessage("two")]
        progress.plan.add(planned)  # the delivery plans it (the journal watches)
        assert [i.text for i in store.outbox.items("default")] == texts
        assert journal.unplanned() == []
        assert all(journal.holds(m) is not None for m in planned)
        if planned[0].text == "one":
            assert store.outbox.items("default") == early  # the same rows
        journal.close()
        assert store.outbox.items("default") == []


def test_a_reply_to_a_conversation_with_a_reply_window_is_journaled_once_planned() -> None:
    """On iLink a reply window packs a reply as it is planned (what does not fit waits in
    the outbox): rows written before could only be swapped for the planned ones in
    several writes, so none are; the planned messages are journaled as they come."""
    from wechat_sdk.agent import Reply
    from wechat_sdk.outbound.pipeline import OutboundMessage

    store = MemoryStore()
    progress = TurnProgress(answered=True, reply=Reply(text="one\ntwo"))
    journal = journaling(store, window=object()).journal(TURN, progress)
    assert store.outbox.items("default") == [] and journal.unplanned() == []
    progress.plan.add([OutboundMessage("one\n\ntwo")])
    assert [i.text for i in store.outbox.items("default")] == ["one\n\ntwo"]


async def test_a_message_whose_reply_is_kept_is_not_taken_in_again_at_the_next_start() -> None:
    """A process that died between writing a reply's rows and taking its message's
    journal out left both: the reply stands for the message, which taken in again would
    be answered twice."""
    import asyncio

    from wechat_sdk.gateway.outbox import journaled_message, kept_messages
    from wechat_sdk.keyed_locks import KeyedLocks
    from wechat_sdk.outbound.pipeline import OutboundMessage
    from wechat_sdk.puppet import Message, MessageKind

    class Turns:
        conversations = KeyedLocks()

    store = MemoryStore()
    kept = journaling(store)
    now = kept.clock.now()
    message = Message(id="m-1", kind=MessageKind.TEXT, talker_id="wxid_alice", text="hi")
    store.outbox.add([journaled_message("default", message, now)])
    reply = kept_messages("default", "wxid_alice", [OutboundMessage("hello")], now, TURN)
    store.outbox.add(reply)
    kept.take_up(Turns(), asyncio.Event())  # type: ignore[arg-type]
    try:
        assert kept.take_arrived() == []
        assert [i.kind for i in store.outbox.items("default")] == ["text"]
    finally:
        kept.cancel_waiting()


async def test_a_kept_turn_whose_reply_waits_for_the_user_is_not_asked_again() -> None:
    """A process that died between keeping the part of a reply a reply window did not
    take (``waiting``, marked with the message it answers) and taking the turn's own item
    out left both: the waiting part stands for the turn, which asked again would be
    answered twice."""
    import asyncio

    from wechat_sdk.keyed_locks import KeyedLocks
    from wechat_sdk.stores.base import OutboxItem

    class Turns:
        conversations = KeyedLocks()
        journals_now = False

        def track(self, task: Any) -> None: ...

    store = MemoryStore()
    kept = journaling(store)
    now = kept.clock.now()
    store.outbox.add([kept_turn(TURN, now)])
    rest = OutboxItem("default", "wxid_alice", "text", now, text="the rest", turn="m-1")
    store.outbox.add([dataclasses.replace(rest, state="waiting")])
    ready = asyncio.Event()
    ready.set()
    kept.take_up(Turns(), ready)  # type: ignore[arg-type]
    await asyncio.gather(*kept.waiting)  # (the conversation's kept work, taken up)
    assert [(i.kind, i.state) for i in store.outbox.items("default")] == [("text", "waiting")]
