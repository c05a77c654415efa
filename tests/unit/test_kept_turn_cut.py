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
from wechat_sdk.outbound.pipeline import OutboundMessage
from wechat_sdk.stores import MemoryStore

TURN = AgentTurn("default", "direct", "wxid_alice", "Alice", "hi", message_id="m-1")


class Recording:
    """The turns' side a cut tells: the DM history it records."""

    def __init__(self) -> None:
        self.recorded: list[Any] = []

    def record_dm(self, turn: AgentTurn, parts: list[str], files: Any = ()) -> None:
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
        pairing_pending=lambda code: True,
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

    def messages(self, reply: Any, whole_lines: bool = False) -> list[Any]:
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
        pairing_pending=lambda code: True,
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


def test_a_reply_to_a_conversation_with_a_reply_window_is_journaled_at_once() -> None:
    """On iLink a reply window packs a reply as it is planned: the reply is journaled as
    soon as it is known (a kill while it waits for its conversation loses nothing), and
    its rows are swapped for the packed ones in one write when it is planned."""
    from wechat_sdk.agent import Reply
    from wechat_sdk.outbound.pipeline import OutboundMessage

    store = MemoryStore()
    writes = counting_writes(store)
    progress = TurnProgress(answered=True, reply=Reply(text="one\ntwo"))
    journal = journaling(store, window=object()).journal(TURN, progress)
    assert [i.text for i in store.outbox.items("default")] == ["one", "two"]
    assert journal.unplanned() == [OutboundMessage("one"), OutboundMessage("two")]
    progress.plan.add([OutboundMessage("one\n\ntwo")])
    assert [i.text for i in store.outbox.items("default")] == ["one\n\ntwo"]
    assert writes == [2, 1]


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


class Windowed(Chunking):
    """A conversation whose reply window takes two messages now."""

    def __init__(self, store: MemoryStore) -> None:
        from wechat_sdk.outbound.waiting import WaitingForUser

        super().__init__(window=object())
        self.waiting = WaitingForUser(  # type: ignore[assignment]
            store.outbox, "default", VirtualClock(), logging.getLogger("test")
        )

    def fit(self, conversation_id: str, messages: list[Any]) -> tuple[list[Any], list[Any]]:
        return messages[:2], messages[2:]


def counting_writes(store: MemoryStore) -> list[int]:
    """The number of rows each write adds to the store's outbox, from now on."""
    writes: list[int] = []
    real_add, real_replace = store.outbox.add, store.outbox.replace
    store.outbox.add = lambda items: writes.append(len(items)) or real_add(items)  # type: ignore[method-assign]
    store.outbox.replace = lambda old, new: writes.append(len(new)) or real_replace(old, new)  # type: ignore[method-assign]
    return writes


def test_a_reply_cut_before_its_window_fitted_it_keeps_its_room_and_its_rest_in_one_write() -> None:
    """On iLink a reply cut while it waited for its conversation is kept as the reply
    window would have taken it: what fits now goes at the next start, the rest waits for
    the user's next message, marked with the message it answers, written after it in the
    same write (rows written apart: a kill between them lost the first part)."""
    from wechat_sdk.agent import Reply

    store = MemoryStore()
    kept = journaling(store)
    kept.outbound = Windowed(store)  # type: ignore[assignment]
    writes = counting_writes(store)
    progress = TurnProgress(answered=True, reply=Reply(text="one\ntwo\nthree"))
    kept.keep_cut_turn(TURN, progress, Recording())  # type: ignore[arg-type]
    rows = store.outbox.items("default")
    assert [(i.text, i.state, i.turn) for i in rows] == [
        ("one", "pending", "m-1"),
        ("two", "pending", "m-1"),
        ("three", "waiting", "m-1"),
    ]
    assert writes == [3]
    assert kept.outbound.waiting.has("wxid_alice")  # type: ignore[attr-defined]


def test_no_message_goes_out_while_the_turn_it_answers_is_still_in_the_outbox(
    caplog: Any,
) -> None:
    """A full disk: the reply's rows and the delete of the kept turn's own item are both
    refused. The reply does not go out now (the next start would ask the agent again and
    answer twice); the turn stays kept, and the log says so."""
    import pytest

    from wechat_sdk.agent import Reply
    from wechat_sdk.outbound.delivery import DeliveryFailed
    from wechat_sdk.outbound.pipeline import OutboundMessage

    store = MemoryStore()
    kept = journaling(store)
    (item,) = store.outbox.add([kept_turn(TURN, kept.clock.now())])
    progress = TurnProgress(kept=item)
    journal = kept.journal(TURN, progress)  # the stop began while the agent thought

    def full(*_: Any) -> Any:
        raise OSError("database or disk is full")

    store.outbox.add = store.outbox.replace = full  # type: ignore[method-assign]
    store.outbox.delete = full  # type: ignore[method-assign]
    progress.answered, progress.reply = True, Reply(text="one")
    journal.answered()
    message = OutboundMessage("one")
    progress.plan.add([message])
    with pytest.raises(DeliveryFailed) as failed:
        progress.plan.going(message)
    assert failed.value.code == "store_failed"
    assert [i.kind for i in store.outbox.items("default")] == ["turn"]
    assert "could not take a kept turn out of the store's outbox" in caplog.text
    assert "a kept turn in the store's outbox: database or disk is full: dropped" not in (
        caplog.text
    )


async def test_what_waits_for_the_user_goes_before_a_kept_turn_is_asked_again() -> None:
    """A kept turn is a message the user wrote: what an earlier reply window could not
    take goes out first, as before any turn's answer (it was left waiting while the
    kept turn was answered)."""
    import asyncio
    import contextlib
    from collections.abc import AsyncIterator

    from wechat_sdk.events import GatewayEvents
    from wechat_sdk.keyed_locks import KeyedLocks
    from wechat_sdk.outbound.waiting import WaitingForUser
    from wechat_sdk.puppet import ReplyWindow

    said: list[str] = []
    store = MemoryStore()

    class Open(Chunking):
        def __init__(self) -> None:
            super().__init__(ReplyWindow(remaining=10, closes_at=float("inf")))
            self.waiting = WaitingForUser(  # type: ignore[assignment]
                store.outbox, "default", VirtualClock(), logging.getLogger("test")
            )

        def fit(
            self, conversation_id: str, messages: list[Any], *, pack: bool = True
        ) -> tuple[list[Any], list[Any]]:
            return messages, []  # (ten places: all goes)

        @contextlib.asynccontextmanager
        async def replying(self, conversation_id: str) -> AsyncIterator[None]:
            yield

        async def send_message(self, to: str, message: Any, sent: Any, **_: Any) -> None:
            said.append(message.text)

    class Turns:
        conversations = KeyedLocks()
        journals_now = False
        events = GatewayEvents()  # (none wanted: reply.sent of "the rest" is no event)

        def track(self, task: Any) -> None: ...

        async def reply(self, turn: AgentTurn, progress: Any, mark: Any) -> None:
            said.append(f"answer to {turn.text}")

        def answer_entry(self, texts: Any, files: Any = ()) -> Any: ...

    kept = journaling(store)
    kept.outbound = Open()  # type: ignore[assignment]
    kept.history = type("History", (), {"record_dm_reply": lambda *a: None})()  # type: ignore[assignment]
    kept.outbound.waiting.keep("wxid_alice", [OutboundMessage("the rest")], answers="m-0")  # type: ignore[attr-defined]
    store.outbox.add([kept_turn(TURN, kept.clock.now())])
    ready = asyncio.Event()
    ready.set()
    kept.take_up(Turns(), ready)  # type: ignore[arg-type]
    await asyncio.gather(*kept.waiting)
    assert said == ["the rest", "answer to hi"]


def test_a_journaled_reply_and_what_its_window_leaves_for_later_are_one_write() -> None:
    """While a stop journals a turn, the reply window's part for later is written in the
    same write as the part that goes now, after it (the later part written first, a kill
    before the journal's write lost the first: the later part stood for the turn)."""
    from wechat_sdk.agent import Reply

    store = MemoryStore()
    kept = journaling(store)
    kept.outbound = Windowed(store)  # type: ignore[assignment]
    writes = counting_writes(store)
    progress = TurnProgress(answered=True, reply=Reply(text="one\ntwo\nthree"))
    kept.journal(TURN, progress)
    assert writes == [3]  # the whole reply, as soon as the stop began
    progress.plan.add([OutboundMessage("one"), OutboundMessage("two")], [OutboundMessage("3")])
    assert writes == [3, 3]  # swapped for the planned rows and the later part, in one write
    rows = store.outbox.items("default")
    assert [(i.text, i.state, i.turn) for i in rows] == [
        ("one", "pending", "m-1"),
        ("two", "pending", "m-1"),
        ("3", "waiting", "m-1"),
    ]


def test_a_reply_never_planned_that_cannot_be_kept_at_a_cut_keeps_its_turn_instead() -> None:
    """A full disk at the cut: the rows of a reply still waiting for its conversation
    (nothing of it went out) are refused. The turn stays kept, to ask the agent again
    after a restart (the message was lost: its turn item was taken out), journaled or
    not (a kept turn asked again without a journal keeps its item)."""
    from wechat_sdk.agent import Reply

    for journaled in (True, False):
        store = MemoryStore()
        kept = journaling(store)
        kept.outbound = Windowed(store)  # type: ignore[assignment]
        (item,) = store.outbox.add([kept_turn(TURN, kept.clock.now())])
        store.outbox.set_state(item.id, "sending")  # as _rerun marks it while the agent runs
        progress = TurnProgress(kept=item)
        if journaled:
            progress.journal = kept.journal(TURN, progress)  # the stop began

        def full(*_: Any) -> Any:
            raise OSError("database or disk is full")

        store.outbox.add = store.outbox.replace = full  # type: ignore[method-assign]
        progress.answered, progress.reply = True, Reply(text="one\ntwo\nthree")
        if progress.journal is not None:
            progress.journal.answered()  # (refused: the turn stands for the reply)
        turns = Recording()
        kept.keep_cut_turn(TURN, progress, turns)  # type: ignore[arg-type]
        rows = store.outbox.items("default")
        assert [(i.kind, i.state) for i in rows] == [("turn", "pending")], journaled
        assert turns.recorded == []  # asked again after the restart, recorded then


async def test_a_cut_says_what_it_kept_for_later_and_no_cut_stream_after_a_failed_one(
    caplog: Any,
) -> None:
    """The log of a cut counts what waits for the user's next message too, and says the
    reply stream was cut only when it was (not after the agent's stream failed)."""
    from collections.abc import AsyncIterator

    import pytest

    from wechat_sdk.agent import Reply
    from wechat_sdk.gateway.turns import WatchedStream

    store = MemoryStore()
    kept = journaling(store)
    kept.outbound = Windowed(store)  # type: ignore[assignment]
    progress = TurnProgress(answered=True, reply=Reply(text="one\ntwo\nthree"))
    with caplog.at_level(logging.INFO):
        kept.keep_cut_turn(TURN, progress, Recording())  # type: ignore[arg-type]
    assert "2 kept in the store: they go out after a restart, 1 more after the user's " in (
        caplog.text
    )

    async def failing() -> AsyncIterator[str]:
        yield "said"
        raise RuntimeError("the model went away")

    stream = WatchedStream(failing())
    assert await stream.__anext__() == "said"
    with pytest.raises(RuntimeError):
        await stream.__anext__()
    caplog.clear()
    failed = TurnProgress(answered=True, stream=stream)
    with caplog.at_level(logging.INFO):
        journaling(MemoryStore()).keep_cut_turn(TURN, failed, Recording())  # type: ignore[arg-type]
    assert "stopped at the end of the reply" in caplog.text
    assert "was cut" not in caplog.text


def test_a_reply_whose_rows_cannot_be_swapped_for_the_planned_ones_does_not_go_out() -> None:
    """The store refuses the swap of a reply's early rows for the packed ones: the early
    rows stay and stand for the reply, which does not go out now (after a restart they
    would send it a second time), nor are they taken out when the turn ends."""
    import pytest

    from wechat_sdk.agent import Reply
    from wechat_sdk.outbound.delivery import DeliveryFailed

    store = MemoryStore()
    progress = TurnProgress(answered=True, reply=Reply(text="one\ntwo"))
    journal = journaling(store, window=object()).journal(TURN, progress)
    early = store.outbox.items("default")

    def full(*_: Any) -> Any:
        raise OSError("database or disk is full")

    store.outbox.replace = full  # type: ignore[method-assign]
    packed = OutboundMessage("one\n\ntwo")
    progress.plan.add([packed])
    with pytest.raises(DeliveryFailed) as failed:
        progress.plan.going(packed)
    assert failed.value.code == "store_failed"
    journal.close()
    assert store.outbox.items("default") == early


def rows(*texts_and_turns: tuple[str, str]) -> list[Any]:
    from wechat_sdk.stores.base import OutboxItem

    return [
        OutboxItem("default", "wxid_alice", "text", 0.0, text=text, turn=turn, id=n)
        for n, (text, turn) in enumerate(texts_and_turns, start=1)
    ]


def test_kept_messages_joining_those_waiting_go_before_their_own_replys_later_part() -> None:
    """Kept messages a closed window refused join the messages waiting for the user: each
    goes before the part of its own reply that waits already (written first, as the
    reply went out), and after what waits for the replies before it."""
    from wechat_sdk.gateway.kept import _waiting_order

    def texts(order: Any) -> list[str] | None:
        return None if order is None else [i.text for i in order]

    a_later, b_later, a_now, b_now, c_now = rows(
        ("a later", "a"), ("b later", "b"), ("a now", "a"), ("b now", "b"), ("c now", "c")
    )
    assert texts(_waiting_order([a_now], [a_later, b_later])) == ["a now", "a later", "b later"]
    assert texts(_waiting_order([a_now, b_now], [a_later, b_later])) == [
        "a now",
        "a later",
        "b now",
        "b later",
    ]
    assert texts(_waiting_order([a_now, c_now], [a_later])) == ["a now", "a later", "c now"]
    assert _waiting_order([c_now], [a_later, b_later]) is None  # appended: in order already
    assert _waiting_order([a_later], [b_later]) is None
    assert all(i.state == "waiting" for i in _waiting_order([a_now], [a_later]) or [])


def test_a_closed_window_at_the_start_puts_a_kept_message_before_its_replys_later_part() -> None:
    """The rest of a reply cut by a stop, refused by a window closed at the next start,
    waits before the part of the same reply the window had already left for later (one
    write: a kill in between loses nothing, sends nothing twice)."""
    store = MemoryStore()
    kept = journaling(store)
    kept.outbound = Windowed(store)  # type: ignore[assignment]
    store.outbox.add(
        kept.outbound.waiting.rows("wxid_alice", [OutboundMessage("3")], answers="m-1")  # type: ignore[attr-defined]
    )
    cut = store.outbox.add(
        [dataclasses.replace(r, turn="m-1", id=0) for r in rows(("1", "m-1"), ("2", "m-1"))]
    )
    writes = counting_writes(store)
    assert kept._wait(cut)
    assert [(i.text, i.state) for i in store.outbox.items("default")] == [
        ("1", "waiting"),
        ("2", "waiting"),
        ("3", "waiting"),
    ]
    assert writes == [3]


def test_a_journaled_reply_cut_before_it_was_planned_keeps_its_rows_where_they_stand() -> None:
    """On iLink the reply written as the agent gave it, cut before it was planned, is kept
    as written: its rows keep their place among what else the stop journaled for the
    conversation (no second write)."""
    from wechat_sdk.agent import Reply

    store = MemoryStore()
    kept = journaling(store)
    kept.outbound = Windowed(store)  # type: ignore[assignment]
    progress = TurnProgress(answered=True, reply=Reply(text="one\ntwo\nthree"))
    progress.journal = kept.journal(TURN, progress)
    written = store.outbox.items("default")
    assert [i.text for i in written] == ["one", "two", "three"]
    writes = counting_writes(store)
    kept.keep_cut_turn(TURN, progress, Recording())  # type: ignore[arg-type]
    assert store.outbox.items("default") == written and writes == []


def test_a_reply_whose_refused_swap_left_its_early_rows_is_kept_once_at_a_cut() -> None:
    """The swap of the early rows for the packed message was refused (a busy store, for a
    moment): those rows stand for the reply; the cut, while the packed message waits for
    its pacing, writes nothing more (the reply stood twice, and went out twice)."""
    from wechat_sdk.agent import Reply

    store = MemoryStore()
    progress = TurnProgress(answered=True, reply=Reply(text="one\ntwo"))
    kept = journaling(store, window=object())
    progress.journal = kept.journal(TURN, progress)
    real_replace = store.outbox.replace

    def busy(*_: Any) -> Any:
        raise OSError("database is locked")

    store.outbox.replace = busy  # type: ignore[method-assign]
    progress.plan.add([OutboundMessage("one\n\ntwo")])
    store.outbox.replace = real_replace  # type: ignore[method-assign]
    kept.keep_cut_turn(TURN, progress, Recording())  # type: ignore[arg-type]
    assert [(i.text, i.state) for i in store.outbox.items("default")] == [
        ("one", "pending"),
        ("two", "pending"),
    ]


def test_a_kept_turn_answered_before_the_stop_whose_reply_cannot_be_kept_is_pending_again(
    caplog: Any,
) -> None:
    """A kept turn asked again (marked ``sending`` while the agent ran) was answered when
    the stop began; the store refuses the reply's rows: the turn is kept to be asked
    again, ``pending`` (left ``sending``, the next start dropped it as a crash's)."""
    from wechat_sdk.agent import Reply

    store = MemoryStore()
    kept = journaling(store)
    kept.outbound = Windowed(store)  # type: ignore[assignment]
    (item,) = store.outbox.add([kept_turn(TURN, kept.clock.now())])
    store.outbox.set_state(item.id, "sending")  # as _rerun marks it while the agent runs

    def full(*_: Any) -> Any:
        raise OSError("database or disk is full")

    store.outbox.add = store.outbox.replace = full  # type: ignore[method-assign]
    progress = TurnProgress(kept=item, answered=True, reply=Reply(text="one\ntwo\nthree"))
    progress.journal = kept.journal(TURN, progress)  # the stop began after the answer
    with caplog.at_level(logging.WARNING):
        kept.keep_cut_turn(TURN, progress, Recording())  # type: ignore[arg-type]
    assert [(i.kind, i.state) for i in store.outbox.items("default")] == [("turn", "pending")]
    assert "the reply to message m-1 from wxid_alice could not be kept" in caplog.text


def test_kept_messages_a_refused_write_leaves_pending_are_not_said_to_wait(caplog: Any) -> None:
    """A closed window refused kept messages at a start, and the store refused to set
    them waiting: they stay kept as they were (they go at the next start), and the log
    says so, not that they wait for the user."""
    store = MemoryStore()
    kept = journaling(store)
    kept.outbound = Windowed(store)  # type: ignore[assignment]
    cut = store.outbox.add([dataclasses.replace(r, id=0) for r in rows(("1", "m-1"))])

    def busy(*_: Any) -> Any:
        raise OSError("database is locked")

    store.outbox.set_state = busy  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO):
        assert kept._wait(cut)
    assert [i.state for i in store.outbox.items("default")] == ["pending"]
    assert "left as it was (kept: it goes out at the next start" in caplog.text
    assert "wait for the user's next message" not in caplog.text
