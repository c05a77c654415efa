"""A stop whose grace period runs out keeps the unfinished work in the store's outbox, and
the next gateway on the same state directory finishes it: the rest of a cut reply goes out
once, in order, before anything new to that conversation; a turn cut before its agent
answered is asked again; nothing is ever sent twice. Virtual time throughout; each
"process" is a new Gateway (and a new SQLite store) on the same state directory, talking
to the same simulated WeChat."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from simulator.world import SimulatedWeChat
from wechat_sdk.agent import Agent, AgentTurn, Reply
from wechat_sdk.config import parse_config
from wechat_sdk.gateway import Gateway
from wechat_sdk.gateway.outbox import (
    OUTBOX_MAX_AGE_S,
    message_id_of,
    turn_from_json,
    turn_to_json,
)
from wechat_sdk.outbound.chunking import chunk_text
from wechat_sdk.puppet import OutboundFile, ReplyWindow
from wechat_sdk.stores import MemoryStore, OutboxItem, SqliteStore
from wechat_sdk.stores.base import LeaseLost

OPEN: dict[str, Any] = {"dmPolicy": "open", "allowFrom": ["*"]}
#: alice may talk to the bot, strangers get a pairing code; one message a second, no burst
PAIRING: dict[str, Any] = {
    "dmPolicy": "pairing",
    "allowFrom": ["wxid_alice"],
    "pacing": {"perSecond": 1, "burst": 1, "chunkGapMs": 0, "jitterMs": 0},
}
PACED: dict[str, Any] = {
    "textChunkLimit": 100,
    "pacing": {"perSecond": 1, "burst": 5, "chunkGapMs": 1000, "jitterMs": 0},
}
LONG = " ".join(f"Sentence {i} of a long answer, sent in chunks." for i in range(1, 41))
CHUNKS = chunk_text(LONG, 100)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class Bot:
    """An agent that answers "long" with LONG, "slow" after a minute, anything else with
    an echo; it notes every turn it is asked about."""

    def __init__(self, world: SimulatedWeChat, reply: Reply | None = None) -> None:
        self.world = world
        self.reply = reply
        self.asked: list[AgentTurn] = []

    async def __call__(self, turn: AgentTurn) -> str | Reply:
        self.asked.append(turn)
        if turn.text == "long":
            return self.reply or LONG
        if turn.text == "slow":
            await self.world.clock.sleep(60)
            return "thought it over"
        return f"echo {turn.text}"

    def texts(self) -> list[str]:
        return [t.text for t in self.asked]


def make_gateway(
    world: SimulatedWeChat, state: Path, agent: Agent, *, store: Any = None, **keys: Any
) -> Gateway:
    config = {"channels": {"wechat": {**OPEN, **PACED, **keys}}}
    return world.gateway(config, agent, state_dir=state, store=store)


async def started(world: SimulatedWeChat, state: Path, agent: Agent, **keys: Any) -> Gateway:
    """A gateway on ``state``, started and logged in."""
    gw = make_gateway(world, state, agent, **keys)
    await gw.start()
    await world.login()
    return gw


def new_world() -> SimulatedWeChat:
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    return world


@contextlib.asynccontextmanager
async def restarted_from(state: Path, **keys: Any) -> AsyncIterator[SimulatedWeChat]:
    """The next process on ``state`` (what a kill left), in a world of its own, logged in
    and run until idle: the world says what it sent."""
    after = new_world()
    gateway = make_gateway(after, state, Bot(after), **keys)
    await gateway.start()
    await after.login()
    await after.run_until_idle()
    try:
        yield after
    finally:
        await gateway.close()


async def code_waits_for_pacing(
    tmp_path: Path, **keys: Any
) -> tuple[SimulatedWeChat, Path, Gateway]:
    """A gateway on ``tmp_path/state`` sends Alice a long reply, paced, when a stranger
    writes: the stranger's pairing code is made and waits for its pacing."""
    world, state = new_world(), tmp_path / "state"
    gw = await started(world, state, Bot(world), **keys)
    await world.say("wxid_alice", "long", settle=False)
    await world.clock.advance(1)  # alice's reply is going out, paced
    await world.say("wxid_stranger", "hello?", settle=False)
    await world.clock.advance(0.1)  # the code is made, and waits for its pacing
    return world, state, gw


async def code_went_once(world: SimulatedWeChat) -> None:
    """The stranger got its pairing code once (in chunks: textChunkLimit is 100), and
    writing again, still pending, gets nothing more."""
    reply = world.texts(to="wxid_stranger")
    assert "\n".join(reply).count("Pairing code") == 1
    assert reply[0].startswith("Hi! This is") and "expires in 1 hour" in reply[-1]
    await world.say("wxid_stranger", "hello again?")  # pending: nothing more
    assert world.texts(to="wxid_stranger") == reply


@contextlib.asynccontextmanager
async def next_process(
    world: SimulatedWeChat, state: Path, agent: Any, **keys: Any
) -> AsyncIterator[Gateway]:
    """The next process on ``state`` (what a stop left), in the same world, started and run
    until idle; closed after."""
    gateway = make_gateway(world, state, agent, **keys)
    await gateway.start()
    await world.run_until_idle()
    try:
        yield gateway
    finally:
        await gateway.close()


def outbox_rows(state: Path) -> list[OutboxItem]:
    with SqliteStore.in_state_dir(state) as store:
        return store.outbox.items("default")


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


async def replying_long(
    tmp_path: Path,
) -> tuple[SimulatedWeChat, Path, SqliteStore, Gateway]:
    """A gateway on a SQLite store of its own (for a test to make it refuse writes), its
    reply to "long" going out, paced."""
    world, state = new_world(), tmp_path / "state"
    store = SqliteStore.in_state_dir(state, clock=world.clock)
    gw = await started(world, state, Bot(world), store=store)
    await world.say("wxid_alice", "long", settle=False)
    await world.clock.advance(1)
    return world, state, store, gw


def refusing_the_next_add(store: SqliteStore) -> list[object]:
    """The store's outbox refuses its next write of items (a moment of SQLITE_BUSY, a
    full disk freed since), then takes them again; the list says what it refused."""
    real_add = store.outbox.add
    refused: list[object] = []

    def add_once_refused(items: Any) -> Any:
        if not refused:
            refused.append(items)
            raise OSError("database is locked")
        return real_add(items)

    store.outbox.add = add_once_refused  # type: ignore[method-assign]
    return refused


async def first_run_cut_mid_reply(
    world: SimulatedWeChat, state: Path, agent: Agent, *, after_s: float = 3, **keys: Any
) -> list[str]:
    """A gateway answers "long" and is stopped (grace 2 s) ``after_s`` into the reply;
    returns what went out."""
    gw = await started(world, state, agent, **keys)
    await world.say("wxid_alice", "long", settle=False)
    await world.clock.advance(after_s)
    await world.drive(gw.close(grace_s=2))
    return world.texts(to="wxid_alice")


async def test_the_rest_of_a_cut_reply_goes_out_once_in_order_after_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world, state = new_world(), tmp_path / "state"
    bot = Bot(world)
    cut = await first_run_cut_mid_reply(world, state, bot)
    assert 2 <= len(cut) < len(CHUNKS) - 5
    assert cut == CHUNKS[: len(cut)]
    kept = outbox_rows(state)
    assert [i.text for i in kept] == CHUNKS[len(cut) :]
    assert all(i.kind == "text" and i.state == "pending" and i.dm for i in kept)
    assert any(
        f"({len(cut)} message(s) sent, {len(kept)} kept in the store: they go out after a "
        "restart)" in m
        for m in logged(caplog)
    )

    async with next_process(world, state, bot):
        assert world.texts(to="wxid_alice") == CHUNKS  # the rest, once, in order
        assert bot.texts() == ["long"]  # the message itself is not answered again
        assert outbox_rows(state) == []
        # the rest is paced like any reply: the minimum gap between its chunks holds
        times = [e.t for e in world.sent(to="wxid_alice")[len(cut) :]]
        assert all(b - a >= 1.0 - 1e-6 for a, b in itertools.pairwise(times))

        # DM history: the turn whole, as if no stop had cut its reply
        await world.say("wxid_alice", "thanks")
        history = [(h.role, h.text) for h in bot.asked[-1].history]
        assert history == [("user", "long"), ("assistant", "\n\n".join(CHUNKS))]


async def test_the_rest_of_a_cut_reply_keeps_its_turn_whole_in_a_full_dm_history(
    tmp_path: Path,
) -> None:
    """A conversation whose history is full (here one turn): the rest of a cut reply,
    sent after the restart, joins the part sent before, and the user's message it answers
    stays (an entry of its own, two replies in a row, cut the history to its newest
    entries, and lost it)."""
    world, state = new_world(), tmp_path / "state"
    bot = Bot(world)
    cut = await first_run_cut_mid_reply(world, state, bot, dmHistoryLimit=1)
    async with next_process(world, state, bot, dmHistoryLimit=1):
        await world.say("wxid_alice", "thanks")
        assert len(cut) < len(CHUNKS)
        assert [(h.role, h.text) for h in bot.asked[-1].history] == [
            ("user", "long"),
            ("assistant", "\n\n".join(CHUNKS)),
        ]
        await world.say("wxid_alice", "bye")
        assert [(h.role, h.text) for h in bot.asked[-1].history] == [
            ("user", "thanks"),
            ("assistant", "echo thanks"),
        ]


async def test_each_part_of_a_cut_reply_is_a_reply_sent_event_when_it_goes(
    tmp_path: Path,
) -> None:
    """The webhook endpoints learn what went out of a reply a stop cut, and of its rest
    when the next start sends it: neither was an event."""
    hooks = {
        "webhooks": [
            {
                "url": "http://127.0.0.1:9/hook",  # (refused: the events stay queued)
                "secret": "whsec_" + "QUFB" * 10 + "QUE=",
                "events": ["reply.sent"],
            }
        ]
    }

    def events() -> list[dict[str, Any]]:
        with SqliteStore.in_state_dir(state) as store:
            return [json.loads(d.body)["data"] for d in store.webhooks.pending()]

    world, state = new_world(), tmp_path / "state"
    bot = Bot(world)
    cut = await first_run_cut_mid_reply(world, state, bot, **hooks)
    (first,) = events()
    assert (first["text"], first["messages"]) == ("\n\n".join(cut), len(cut))
    async with next_process(world, state, bot, **hooks):
        assert world.texts(to="wxid_alice") == CHUNKS
    first_again, rest = events()
    assert first_again == first
    assert (rest["text"], rest["messages"]) == (
        "\n\n".join(CHUNKS[len(cut) :]),
        len(CHUNKS) - len(cut),
    )
    assert rest["inReplyTo"] == first["inReplyTo"] != ""


async def test_files_of_a_cut_reply_are_kept_after_its_text(tmp_path: Path) -> None:
    world, state = new_world(), tmp_path / "state"
    files = [
        OutboundFile(name="chart.png", kind="image", data=PNG, mime="image/png"),
        OutboundFile(name="note.txt", kind="file", data="日本語".encode()),
    ]
    bot = Bot(world, Reply(text=LONG, files=files))
    cut = await first_run_cut_mid_reply(world, state, bot)
    assert [i.kind for i in outbox_rows(state)][-2:] == ["file", "file"]

    async with next_process(world, state, bot):
        sent = world.sent(to="wxid_alice")
        assert [e.text for e in sent[: len(CHUNKS)]] == CHUNKS
        assert len(cut) < len(CHUNKS)
        media = [e.media for e in sent[len(CHUNKS) :]]
        assert [(m or {}).get("name") for m in media] == ["chart.png", "note.txt"]
        assert [(m or {}).get("size") for m in media] == [len(PNG), len("日本語".encode())]


async def test_a_cut_reply_of_files_only_is_one_history_entry_naming_each_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The files that went before the stop and those sent after the restart are one
    assistant entry, each named (a reply of files only left no entry at all)."""
    world, state = new_world(), tmp_path / "state"
    names = [f"page{n}.png" for n in range(1, 7)]
    files = [OutboundFile(name=n, kind="image", data=PNG, mime="image/png") for n in names]
    bot = Bot(world, Reply(files=files))
    one_a_second = {"perSecond": 1, "burst": 1, "chunkGapMs": 0, "jitterMs": 0}
    await first_run_cut_mid_reply(world, state, bot, after_s=1.5, pacing=one_a_second)
    went_before = len(world.sent(to="wxid_alice"))
    assert 0 < went_before < len(names)
    # the files that went count as messages sent (they said 0)
    rest = len(names) - went_before
    assert any(f"({went_before} message(s) sent, {rest} kept" in m for m in logged(caplog))

    async with next_process(world, state, bot, pacing=one_a_second):
        assert [e.media and e.media["name"] for e in world.sent(to="wxid_alice")] == names
        await world.say("wxid_alice", "thanks")
        assert [(h.role, h.text) for h in bot.asked[-1].history] == [
            ("user", "long"),
            ("assistant", "\n\n".join(f"[image: {n}]" for n in names)),
        ]


async def test_a_turn_cut_before_its_agent_answered_is_asked_again_after_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world, state = new_world(), tmp_path / "state"
    bot = Bot(world)
    gw = await started(world, state, bot)
    await world.say("wxid_alice", "hello")  # some DM history first
    await world.say("wxid_alice", "slow", settle=False)
    await world.clock.advance(1)  # the agent thinks for a minute
    await world.drive(gw.close(grace_s=2))
    assert world.texts(to="wxid_alice") == ["echo hello"]
    (kept,) = outbox_rows(state)
    assert kept.kind == "turn" and kept.dm
    assert any("1 turn kept in the store, the agent is asked again" in m for m in logged(caplog))

    async with next_process(world, state, bot):
        assert world.texts(to="wxid_alice") == ["echo hello", "thought it over"]
        first, again = bot.asked[1], bot.asked[2]
        assert again.text == "slow" and again.message_id == first.message_id
        assert again.history == first.history  # what the agent was given the first time
        assert again.sender_name == first.sender_name
        assert outbox_rows(state) == []
        await world.say("wxid_alice", "and now?")
        assert [(h.role, h.text) for h in bot.asked[-1].history] == [
            ("user", "hello"),
            ("assistant", "echo hello"),
            ("user", "slow"),
            ("assistant", "thought it over"),
        ]
        assert bot.texts().count("slow") == 2


async def test_a_turn_whose_reply_was_kept_too_is_not_asked_again(tmp_path: Path) -> None:
    """A process killed between writing a turn's reply to the outbox and deleting the
    turn's own item leaves both: the reply goes out once, the agent is not asked again
    (it would answer twice). A turn kept without its reply is still asked."""
    world, state = new_world(), tmp_path / "state"
    bot = Bot(world)
    gw = await started(world, state, bot)
    await world.say("wxid_alice", "slow", settle=False)
    await world.say("wxid_bob", "slow", settle=False)
    await world.clock.advance(1)
    await world.drive(gw.close(grace_s=2))
    (alice, bob) = sorted(outbox_rows(state), key=lambda i: i.conversation_id)
    assert alice.kind == bob.kind == "turn"
    with SqliteStore.in_state_dir(state) as store:  # alice's reply written, then the kill
        reply = OutboxItem("default", "wxid_alice", "text", world.clock.now(), text="kept reply")
        store.outbox.add([replace(reply, dm=True, turn=message_id_of(alice))])

    async with next_process(world, state, bot):
        assert world.texts(to="wxid_alice") == ["kept reply"]
        assert world.texts(to="wxid_bob") == ["thought it over"]
        assert [t.sender_id for t in bot.asked] == ["wxid_alice", "wxid_bob", "wxid_bob"]
        assert outbox_rows(state) == []


async def test_a_turn_waiting_behind_a_cut_reply_is_kept_and_answered_after_its_rest(
    tmp_path: Path,
) -> None:
    world, state = new_world(), tmp_path / "state"
    bot = Bot(world)
    gw = await started(world, state, bot)
    await world.say("wxid_alice", "long", settle=False)
    await world.clock.advance(1)
    await world.say("wxid_alice", "and then?", settle=False)  # waits for the long reply
    await world.clock.advance(2)
    await world.drive(gw.close(grace_s=2))
    rows = outbox_rows(state)
    assert [i.kind for i in rows].count("turn") == 1  # "and then?", not answered yet
    assert [i.text for i in rows if i.kind == "text"] == CHUNKS[len(world.texts()) :]
    assert bot.texts() == ["long"]

    async with next_process(world, state, bot):
        assert world.texts(to="wxid_alice") == [*CHUNKS, "echo and then?"]
        assert bot.texts() == ["long", "and then?"]


async def test_kept_messages_go_before_a_new_reply_to_the_same_conversation(
    tmp_path: Path,
) -> None:
    world, state = new_world(), tmp_path / "state"
    bot = Bot(world)
    cut = await first_run_cut_mid_reply(world, state, bot)
    # while no gateway runs, alice writes again: WeChat hands one message over with the
    # history it replays at login (before the account is ready), one after
    world.add_past_message("wxid_alice", "are you there?", age_s=0)
    await world.say("wxid_alice", "hello?", settle=False)
    await world.say("wxid_bob", "hi", settle=False)

    async with next_process(world, state, bot):
        assert world.texts(to="wxid_alice") == [*CHUNKS, "echo are you there?", "echo hello?"]
        assert len(cut) < len(CHUNKS)
        # another conversation is not held up by alice's kept messages
        bob = world.sent(to="wxid_bob")[0].t
        rest_done = world.sent(to="wxid_alice")[len(CHUNKS) - 1].t
        assert bob < rest_done


async def test_a_stop_during_the_resend_keeps_what_is_still_left(tmp_path: Path) -> None:
    world, state = new_world(), tmp_path / "state"
    bot = Bot(world)
    cut = await first_run_cut_mid_reply(world, state, bot)

    second = make_gateway(world, state, bot)
    await second.start()
    await world.clock.advance(4)  # a few kept chunks out, then stopped again
    await world.drive(second.close(grace_s=1))
    middle = world.texts(to="wxid_alice")
    assert len(cut) < len(middle) < len(CHUNKS)
    assert middle == CHUNKS[: len(middle)]
    assert [i.text for i in outbox_rows(state)] == CHUNKS[len(middle) :]
    assert all(i.state == "pending" for i in outbox_rows(state))

    third = make_gateway(world, state, bot)
    await third.start()
    await world.run_until_idle()
    try:
        assert world.texts(to="wxid_alice") == CHUNKS
    finally:
        await third.close()


async def test_an_item_left_sending_by_a_crash_is_dropped_not_sent_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world, state = new_world(), tmp_path / "state"
    now = world.clock.now()
    with SqliteStore.in_state_dir(state) as store:
        maybe, _ = store.outbox.add(
            [
                OutboxItem("default", "wxid_alice", "text", now, text="part one", dm=True),
                OutboxItem("default", "wxid_alice", "text", now, text="part two", dm=True),
            ]
        )
        # the process died while "part one" was with the puppet: it may have gone out
        store.outbox.set_state(maybe.id, "sending")

    gw = await started(world, state, Bot(world))
    try:
        assert world.texts(to="wxid_alice") == ["part two"]
        assert outbox_rows(state) == []
        assert any(
            "was being sent when the last gateway ended: dropped" in m for m in logged(caplog)
        )
    finally:
        await gw.close()


async def test_kept_work_older_than_a_day_is_dropped_not_sent_late(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world, state = new_world(), tmp_path / "state"
    now = world.clock.now()
    turn = AgentTurn("default", "direct", "wxid_alice", "Alice", "slow", message_id="m-old")
    with SqliteStore.in_state_dir(state) as store:
        store.outbox.add(
            [
                OutboxItem(
                    "default", "wxid_alice", "text", now - OUTBOX_MAX_AGE_S - 60, text="old"
                ),
                OutboxItem(
                    "default",
                    "wxid_bob",
                    "turn",
                    now - OUTBOX_MAX_AGE_S - 60,
                    turn=turn_to_json(turn),
                ),
                OutboxItem("default", "wxid_alice", "text", now - 3600, text="recent"),
            ]
        )
    bot = Bot(world)
    gw = await started(world, state, bot)
    try:
        assert world.texts(to="wxid_alice") == ["recent"]
        assert world.texts(to="wxid_bob") == []
        assert bot.asked == []
        assert outbox_rows(state) == []
        assert sum("old (more than 24 h): dropped, not sent late" in m for m in logged(caplog)) == 2
    finally:
        await gw.close()


async def test_kept_work_waits_for_the_login_and_a_stop_before_it_costs_no_grace(
    tmp_path: Path,
) -> None:
    world, state = new_world(), tmp_path / "state"
    bot = Bot(world)
    await first_run_cut_mid_reply(world, state, bot)
    kept = outbox_rows(state)
    world.accounts["default"].session = False  # logged out meanwhile: a scan is needed

    second = make_gateway(world, state, bot)
    await second.start()
    await world.run_until_idle()
    assert second.status()[0].state == "waiting_for_scan"
    await asyncio.wait_for(second.wait_idle(), 1)  # kept work is not "in flight" yet
    before = world.clock.now()
    await world.drive(second.close(grace_s=30))
    assert world.clock.now() - before < 1  # nothing to wait for
    assert outbox_rows(state) == kept  # still kept, untouched


async def test_a_cut_stream_keeps_what_the_agent_had_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world, state = new_world(), tmp_path / "state"
    pieces = [f"Piece {i} of a streamed answer. " for i in range(1, 9)]

    async def streaming(turn: AgentTurn) -> AsyncIterator[str]:
        for i, piece in enumerate(pieces):
            if i == 6:
                await world.clock.sleep(600)  # the agent stalls: cut here
            yield piece
            await world.clock.sleep(0.1)

    keys: dict[str, Any] = {"draftChunk": {"minChars": 50, "maxChars": 80, "idleMs": 100_000}}
    gw = await started(world, state, streaming, **keys)
    await world.say("wxid_alice", "stream", settle=False)
    await world.clock.advance(5)
    await world.drive(gw.close(grace_s=2))
    before = world.texts(to="wxid_alice")
    kept = [i.text or "" for i in outbox_rows(state)]
    said = "".join(pieces[:6]).strip()
    assert before and kept
    assert " ".join([*before, *kept]) == said
    assert any("the reply stream to wxid_alice was cut" in m for m in logged(caplog))

    async with next_process(world, state, streaming, **keys):
        assert " ".join(world.texts(to="wxid_alice")) == said  # the rest of what it said


async def test_a_stream_cut_before_it_said_anything_is_asked_again(tmp_path: Path) -> None:
    world, state = new_world(), tmp_path / "state"
    calls: list[str] = []

    async def streaming(turn: AgentTurn) -> AsyncIterator[str]:
        calls.append(turn.text)
        if len(calls) == 1:
            await world.clock.sleep(600)  # thinking, not a word yet
        yield "Here it is."

    keys: dict[str, Any] = {"draftChunk": {"minChars": 5, "maxChars": 80}}
    gw = await started(world, state, streaming, **keys)
    await world.say("wxid_alice", "stream", settle=False)
    await world.clock.advance(1)
    await world.drive(gw.close(grace_s=2))
    assert [i.kind for i in outbox_rows(state)] == ["turn"]

    async with next_process(world, state, streaming, **keys):
        assert world.texts(to="wxid_alice") == ["Here it is."]
        assert calls == ["stream", "stream"]


async def test_group_replies_keep_their_mention_on_the_kept_first_chunk(tmp_path: Path) -> None:
    world, state = new_world(), tmp_path / "state"
    world.add_room("r1@chatroom", "Family", ["wxid_alice"])

    async def agent(turn: AgentTurn) -> Reply | str:
        if turn.room_id is None:
            return f"echo {turn.text}"
        return Reply(text=LONG, mention_ids=[turn.sender_id])

    gw = await started(world, state, agent, pacing={"perSecond": 0.1, "burst": 1, "jitterMs": 0})
    await world.say("wxid_bob", "hi")  # takes the only token: the next send waits 10 s
    await world.say("wxid_alice", "long", room="r1@chatroom", mention=True, settle=False)
    await world.clock.advance(0.5)  # the first chunk waits for its pacing turn
    await world.drive(gw.close(grace_s=1))
    assert world.sent(room="r1@chatroom") == []
    first, *others = outbox_rows(state)
    assert first.mention_ids == ("wxid_alice",) and not first.dm
    assert all(o.mention_ids == () for o in others)

    async with next_process(world, state, agent):
        assert world.texts(room="r1@chatroom") == CHUNKS
        first_out, second_out = world.sent(room="r1@chatroom")[:2]
        assert world.message_payload(first_out.message_id).mention_ids == ("wxid_alice",)
        assert world.message_payload(second_out.message_id).mention_ids == ()


def test_a_turn_round_trips_through_json_with_its_media_and_history(tmp_path: Path) -> None:
    from wechat_sdk.agent import HistoryEntry, MediaItem, ToolRegistry

    tools = ToolRegistry()
    tools.register("weather", lambda: "sunny")
    tools.register("search", lambda: "results")
    turn = AgentTurn(
        account_id="work",
        chat_type="group",
        sender_id="wxid_alice",
        sender_name="Alice 爱丽丝",
        text="what is this?",
        message_id="msg-1",
        room_id="r1@chatroom",
        room_topic="Family",
        raw_text="@Bot\u2005what is this?",
        mentioned=True,
        timestamp=1_700_000_000.5,
        media=(
            MediaItem("image", tmp_path / "a.png", "image/png", 1234, "a.png"),
            MediaItem("file", None, None, 10**9, "big.zip", note="file too large"),
        ),
        history=(HistoryEntry("user", "wxid_bob", "Bob", "hi", 1_699_999_999.0, "msg-0"),),
        tools=tools.allowed(["weather"], where="group r1@chatroom"),
    )
    back = turn_from_json(turn_to_json(turn), tools)
    assert back.tools.names == ["weather"]
    assert {**vars_of(back), "tools": None} == {**vars_of(turn), "tools": None}
    with pytest.raises(ValueError, match="not a kept turn"):
        turn_from_json('{"format": 1}', tools)


def vars_of(turn: AgentTurn) -> dict[str, Any]:
    return {name: getattr(turn, name) for name in turn.__slots__}


@pytest.fixture(autouse=True)
def _log_everything(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


async def test_kept_turns_are_checked_again_under_the_config_in_force(tmp_path: Path) -> None:
    """A restart that narrows a group's tools and moves dmPolicy to allowlist: the kept
    group turn is offered only the tools still allowed, and the kept DM from a sender no
    longer let in never reaches the agent."""
    world, state = new_world(), tmp_path / "state"
    world.add_room("r1@chatroom", "Team", ["wxid_alice", "wxid_bob", "wxid_bot_default"])
    asked: list[tuple[str, list[str]]] = []

    async def agent(turn: AgentTurn) -> str:
        asked.append((turn.text, list(turn.tools.names)))
        await world.clock.sleep(60)
        return f"done {turn.text}"

    async def weather(city: str = "") -> str:
        return "sunny"

    async def notes() -> str:
        return "notes"

    groups: dict[str, Any] = {"r1@chatroom": {"requireMention": False}}
    first = make_gateway(world, state, agent, groups=groups)
    first.tools.register("weather", weather)
    first.tools.register("notes", notes)
    await first.start()
    await world.login()
    await world.say("wxid_bob", "plan the trip", room="r1@chatroom", settle=False)
    await world.say("wxid_alice", "a secret", settle=False)
    await world.clock.advance(1)
    await world.drive(first.close(grace_s=2))
    assert sorted(a[0] for a in asked) == ["a secret", "plan the trip"]
    assert all(sorted(names) == ["notes", "weather"] for _, names in asked)
    asked.clear()

    narrowed = {"r1@chatroom": {"requireMention": False, "tools": {"deny": ["weather"]}}}
    second = make_gateway(
        world, state, agent, groups=narrowed, dmPolicy="allowlist", allowFrom=["wxid_carol"]
    )
    second.tools.register("weather", weather)
    second.tools.register("notes", notes)
    await second.start()
    try:
        await world.run_until_idle()
        assert asked == [("plan the trip", ["notes"])]  # the DM was not asked again
        assert world.texts(to="wxid_alice") == []
        assert world.texts(room="r1@chatroom") == ["done plan the trip"]
        assert outbox_rows(state) == []
    finally:
        await second.close()


async def test_a_kept_group_turn_without_the_mention_the_config_now_needs_is_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A group turn kept while its group needed no mention, and a restart under a config
    that needs one: the turn did not mention the bot, so it is not answered, as a new
    message like it would not be; a kept turn that did mention the bot still is."""
    world, state = new_world(), tmp_path / "state"
    world.add_room("r1@chatroom", "Team", ["wxid_alice", "wxid_bob", "wxid_bot_default"])
    asked: list[str] = []

    async def agent(turn: AgentTurn) -> str:
        asked.append(turn.text)
        await world.clock.sleep(60)
        return f"done {turn.text}"

    first = make_gateway(world, state, agent, groups={"*": {"requireMention": False}})
    await first.start()
    await world.login()
    await world.say("wxid_bob", "plan the trip", room="r1@chatroom", settle=False)
    await world.say("wxid_alice", "and the hotel", room="r1@chatroom", mention=True, settle=False)
    await world.clock.advance(1)
    await world.drive(first.close(grace_s=2))
    assert asked == ["plan the trip"]  # (the other waited behind it: both are kept)
    asked.clear()

    second = make_gateway(world, state, agent)  # requireMention: true, the default
    await second.start()
    try:
        with caplog.at_level(logging.WARNING, "wechat_sdk"):
            await world.run_until_idle()
        assert asked == ["and the hotel"]
        assert world.texts(room="r1@chatroom") == ["done and the hotel"]
        assert "reason=no_mention" in caplog.text
        assert outbox_rows(state) == []
    finally:
        await second.close()


@pytest.mark.parametrize("killed_after_s", [0.5, 2.5, 4.5])
async def test_a_kill_during_the_grace_period_loses_nothing_and_repeats_nothing(
    tmp_path: Path, killed_after_s: float
) -> None:
    """A supervisor's SIGKILL comes before the grace period ends (docker stop: 10 s).
    What the state directory holds at that moment, taken up by the next process, sends
    the rest of the reply: with what had gone out, every chunk exactly once, in order."""
    import shutil

    world, state = new_world(), tmp_path / "state"
    bot = Bot(world)
    gw = await started(world, state, bot)
    await world.say("wxid_alice", "long", settle=False)
    await world.clock.advance(1)  # the reply is going out, paced
    stopping = asyncio.ensure_future(gw.close(grace_s=30))
    await world.clock.advance(killed_after_s)
    killed = tmp_path / "killed"
    shutil.copytree(state, killed)  # what a kill leaves on disk, at this moment
    sent_before = world.texts(to="wxid_alice")
    assert 0 < len(sent_before) < len(CHUNKS)
    await world.drive(stopping)  # (this process is gone: what it does next is not counted)

    async with restarted_from(killed) as after:
        assert sent_before + after.texts(to="wxid_alice") == CHUNKS


async def test_a_reply_whose_journal_cannot_be_marked_during_a_stop_is_not_sent_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The disk fills up during a stop, after the reply in flight was journaled: its
    messages can no longer be marked ``sending`` nor deleted. A message that cannot be
    marked does not go out now (it stays kept, pending, for the next start): sent now
    and left pending, the next start would send it a second time."""
    import sqlite3

    world, state, store, gw = await replying_long(tmp_path)
    stopping = asyncio.ensure_future(gw.close(grace_s=30))
    await world.clock.advance(0.5)  # the stop journaled the rest of the reply
    assert outbox_rows(state)

    def full(*_: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store.outbox, "set_state", full)
    monkeypatch.setattr(store.outbox, "delete", full)
    await world.drive(stopping)
    monkeypatch.undo()
    assert world.texts(to="wxid_alice")
    assert any("not sent now" in m for m in logged(caplog))

    async with next_process(world, state, Bot(world)):
        assert world.texts(to="wxid_alice") == CHUNKS


async def test_a_kill_while_a_send_is_with_the_puppet_at_the_stop_does_not_send_it_twice(
    tmp_path: Path,
) -> None:
    """The stop begins while one message of the reply is with the puppet (a slow send),
    and the process is killed before that send returns. The journal the stop wrote must
    not hold that message as not sent: it went out, and the next process would send it a
    second time."""
    import shutil

    world, state = new_world(), tmp_path / "state"
    gw = await started(world, state, Bot(world))
    await world.say("wxid_alice", "long", settle=False)
    await world.clock.advance(1)  # the reply is going out, paced
    world.fault("slow_send", seconds=20)
    await world.clock.advance(1.5)  # the next message is with the puppet
    sent_before = world.texts(to="wxid_alice")
    stopping = asyncio.ensure_future(gw.close(grace_s=30))
    await world.clock.advance(0.5)
    killed = tmp_path / "killed"
    shutil.copytree(state, killed)  # what a kill leaves on disk, at this moment
    assert world.texts(to="wxid_alice") == sent_before
    await world.drive(stopping)  # (the send with the puppet went out: WeChat had it)
    in_flight = CHUNKS[len(sent_before)]
    assert world.texts(to="wxid_alice")[len(sent_before)] == in_flight

    async with restarted_from(killed) as after:
        assert in_flight not in after.texts(to="wxid_alice")
        assert [*sent_before, in_flight, *after.texts(to="wxid_alice")] == CHUNKS


async def test_a_kill_right_after_the_stop_journaled_the_reply_does_not_send_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal the stop writes holds the message with the puppet as ``sending`` from
    its first write: a kill just after that write (before any other) must not leave it
    ``pending``, or the next process sends it a second time."""
    import shutil

    world, state, store, gw = await replying_long(tmp_path)
    world.fault("slow_send", seconds=20)
    await world.clock.advance(1.5)  # the next message is with the puppet
    sent_before = world.texts(to="wxid_alice")
    killed = tmp_path / "killed"
    real_add = store.outbox.add

    def add_then_killed(items: Any) -> Any:
        added = real_add(items)
        if not killed.exists() and any(i.kind == "text" for i in items):
            shutil.copytree(state, killed)  # a kill right after this write
        return added

    monkeypatch.setattr(store.outbox, "add", add_then_killed)
    stopping = asyncio.ensure_future(gw.close(grace_s=30))
    await world.clock.advance(0.5)
    assert killed.exists()
    await world.drive(stopping)  # (the send with the puppet went out: WeChat had it)
    in_flight = CHUNKS[len(sent_before)]
    assert world.texts(to="wxid_alice")[len(sent_before)] == in_flight

    async with restarted_from(killed) as after:
        assert [*sent_before, in_flight, *after.texts(to="wxid_alice")] == CHUNKS


async def test_a_kill_as_a_stop_journals_the_reply_of_a_kept_turn_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept turn, asked again after a restart, is answered; a second stop begins while
    the reply goes out, and its journal's first write is all a kill leaves: the rest of
    the reply still goes out after the next start (the reply is written before the kept
    turn it stands for is deleted, not after: that order lost both)."""
    import shutil

    world, state = new_world(), tmp_path / "state"

    async def thinking(turn: AgentTurn) -> str:
        await world.clock.sleep(60)
        return LONG

    gw = await started(world, state, thinking)
    await world.say("wxid_alice", "long", settle=False)
    await world.clock.advance(1)
    await world.drive(gw.close(grace_s=2))
    assert [i.kind for i in outbox_rows(state)] == ["turn"]

    store = SqliteStore.in_state_dir(state, clock=world.clock)
    second = make_gateway(world, state, Bot(world), store=store)
    await second.start()
    await world.clock.advance(2.5)  # the kept turn is answered, its reply going out, paced
    assert 0 < len(world.texts(to="wxid_alice")) < len(CHUNKS)
    killed, sent_before = tmp_path / "killed", []

    def then_killed(write: Any) -> Any:
        def written(*args: Any) -> Any:
            done = write(*args)
            if not killed.exists():  # a kill right after the first write:
                shutil.copytree(state, killed)  # what it leaves on disk
                sent_before.extend(world.texts(to="wxid_alice"))  # and what went out
            return done

        return written

    monkeypatch.setattr(store.outbox, "add", then_killed(store.outbox.add))
    monkeypatch.setattr(store.outbox, "delete", then_killed(store.outbox.delete))
    stopping = asyncio.ensure_future(second.close(grace_s=30))
    await world.clock.advance(0.5)
    assert killed.exists()
    await world.drive(stopping)  # (this process is gone: what it does next is not counted)

    async with restarted_from(killed) as after:
        assert [*sent_before, *after.texts(to="wxid_alice")] == CHUNKS


async def test_a_kill_during_the_grace_period_loses_no_pairing_code(tmp_path: Path) -> None:
    """A stranger writes while a stop lets a long reply finish: the pairing code waits for
    its pacing, and a kill then must not lose it (the request is made: writing again gets
    no code for an hour). The next process sends it, once."""
    import shutil

    world, state = new_world(), tmp_path / "state"
    keys = PAIRING
    gw = await started(world, state, Bot(world), **keys)
    await world.say("wxid_alice", "long", settle=False)
    await world.clock.advance(1)  # the reply is going out, paced
    stopping = asyncio.ensure_future(gw.close(grace_s=30))
    await world.clock.advance(0.5)
    await world.say("wxid_stranger", "hello?", settle=False)
    await world.clock.advance(0.1)  # the code is made, and waits for its pacing
    killed = tmp_path / "killed"
    shutil.copytree(state, killed)  # what a kill leaves on disk, at this moment
    assert world.texts(to="wxid_stranger") == []
    await world.drive(stopping)  # (this process is gone: what it does next is not counted)

    async with restarted_from(killed, **keys) as after:
        await code_went_once(after)


async def test_a_kill_outside_a_stop_loses_no_pairing_code(tmp_path: Path) -> None:
    """No stop at all: a stranger's code waits for its pacing (a long reply is going out)
    when the process is killed. The code was only in memory, so it was lost, and the
    request stayed pending: the stranger writing again got nothing, for an hour. Now the
    code is in the outbox from the start, and the next process sends it, once."""
    import shutil

    world, state, gw = await code_waits_for_pacing(tmp_path, **PAIRING)
    killed = tmp_path / "killed"
    shutil.copytree(state, killed)  # what a kill leaves on disk, at this moment
    assert world.texts(to="wxid_stranger") == []
    await world.drive(gw.close(grace_s=0))  # (this process is gone: not counted)

    async with restarted_from(killed, **PAIRING) as after:
        await code_went_once(after)
    assert outbox_rows(killed) == []  # (sent: nothing left kept)


async def test_a_pairing_code_queued_before_the_stop_survives_a_kill_in_its_grace_period(
    tmp_path: Path,
) -> None:
    """The code was made before the stop began and still waits for its pacing when it
    begins: the stop journals it with the turns in flight, so a kill in the grace period
    leaves it in the outbox (it used to be kept only when the grace period ran out)."""
    import shutil

    world, state, gw = await code_waits_for_pacing(tmp_path, **PAIRING)
    stopping = asyncio.ensure_future(gw.close(grace_s=30))
    await world.clock.advance(0.5)
    killed = tmp_path / "killed"
    shutil.copytree(state, killed)  # what a kill leaves on disk, at this moment
    assert world.texts(to="wxid_stranger") == []
    await world.drive(stopping)  # (this process is gone: what it does next is not counted)

    async with restarted_from(killed, **PAIRING) as after:
        reply = after.texts(to="wxid_stranger")
        assert "\n".join(reply).count("Pairing code") == 1
        assert reply[0].startswith("Hi! This is") and "expires in 1 hour" in reply[-1]


async def test_a_pairing_code_is_in_the_outbox_before_its_message_leaves_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During a stop a stranger's message gets a pairing code: the code is written before
    the message's own journal is taken out (a kill between the two lost the code: the
    message marked, the request made, writing again gets no code)."""
    from wechat_sdk.gateway.kept import KeptWork

    at_done: list[list[str]] = []
    real_done = KeptWork.message_done

    def message_done(self: KeptWork, item: OutboxItem) -> bool:
        if item.conversation_id == "wxid_stranger":  # (a kill right here)
            at_done.append([i.text or i.kind for i in self.outbox.items(self.account_id)])
        return real_done(self, item)

    monkeypatch.setattr(KeptWork, "message_done", message_done)
    world, state = new_world(), tmp_path / "state"
    gw = await started(world, state, Bot(world), **PAIRING)
    await world.say("wxid_alice", "long", settle=False)
    await world.clock.advance(1)  # the reply is going out, paced
    stopping = asyncio.ensure_future(gw.close(grace_s=30))
    await world.clock.advance(0.5)
    await world.say("wxid_stranger", "hello?", settle=False)
    await world.drive(stopping)
    (outbox,) = at_done
    assert any("Pairing code" in text for text in outbox), outbox


async def test_a_pairing_code_cut_partway_by_a_stop_sends_only_its_rest_after_a_restart(
    tmp_path: Path,
) -> None:
    """The grace period ends while a stranger's pairing reply goes out in chunks: the next
    start sends the chunks that had not gone out, not the whole reply again."""
    world, state = new_world(), tmp_path / "state"
    keys = PAIRING
    gw = await started(world, state, Bot(world), **keys)
    await world.say("wxid_alice", "long", settle=False)
    await world.say("wxid_stranger", "hello?", settle=False)
    await world.clock.advance(1)
    await world.drive(gw.close(grace_s=3))
    before = world.texts(to="wxid_stranger")
    assert 0 < len(before) < 4  # (of 4 messages: cut between lines, in 100 characters)

    async with next_process(world, state, Bot(world), **keys):
        reply = world.texts(to="wxid_stranger")
        assert len(reply) == 4 and reply[: len(before)] == before
        assert "\n".join(reply).count("Pairing code") == 1
        assert reply[0].startswith("Hi! This is") and "expires in 1 hour" in reply[-1]


NOTIFYING = {**PAIRING, "pairingNotify": "wxid_alice"}  # the owner is told of each request


async def test_a_kept_pairing_code_whose_request_expired_is_not_sent_after_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stop keeps a stranger's code (and the owner's notice of it); the gateway comes
    back after the request expired: the code no longer works, so neither goes out (the
    stranger writing again gets a fresh one), said once in the log. The rest of the owner's
    reply kept with them still goes."""
    world, state, gw = await code_waits_for_pacing(tmp_path, **NOTIFYING)
    await world.drive(gw.close(grace_s=0.5))
    assert world.texts(to="wxid_stranger") == []
    rows = outbox_rows(state)
    kept = "\n".join(i.text or "" for i in rows)
    assert "Pairing code" in kept and "wants to talk to the bot" in kept
    (old_code,) = {i.pairing_code for i in rows if i.pairing_code is not None}
    told_alice = len(world.texts(to="wxid_alice"))
    await world.clock.advance(3600)  # the gateway is away for an hour: the request expires

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="wechat_sdk"):
        async with next_process(world, state, Bot(world), **NOTIFYING) as gateway:
            assert world.texts(to="wxid_stranger") == []
            to_alice = world.texts(to="wxid_alice")[told_alice:]
            assert to_alice and all(t in CHUNKS for t in to_alice)  # her reply's rest only
            assert outbox_rows(state) == []
            assert gateway.pairing.list() == []

            await world.say("wxid_stranger", "anyone?")  # a new request, a new code
            fresh = "\n".join(world.texts(to="wxid_stranger"))  # (in chunks)
            (request,) = gateway.pairing.list()
            assert request.code in fresh and "Pairing code" in fresh
    (record,) = [r for r in caplog.records if "reason=pairing_not_pending" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert f"kept messages of pairing request {old_code} not sent" in record.getMessage()


class Windows:
    """The simulator's puppet with reply windows, as iLink's: closed for the ids in
    ``closed``, open (and roomy) for everyone else."""

    def __init__(self, inner: Any, closed: set[str]) -> None:
        self._inner = inner
        self.closed = closed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def reply_window(self, conversation_id: str) -> ReplyWindow | None:
        if conversation_id in self.closed:
            return ReplyWindow(remaining=0, closes_at=0.0)
        return ReplyWindow(remaining=100, closes_at=4_000_000_000.0)


def windowed(
    world: SimulatedWeChat,
    state: Path,
    config: dict[str, Any],
    closed: set[str],
    agent: Agent,
    store: Any = None,
) -> Gateway:
    """A gateway on ``state`` whose puppet has reply windows (:class:`Windows`), closed
    for the ids in ``closed``."""
    return Gateway(
        parse_config(json.dumps(config)),
        agent=agent,
        clock=world.clock,
        state_dir=state,
        store=store,
        puppet_factory=lambda account: Windows(world.puppet_factory(account), closed),
        show_terminal_qr=False,
    )


async def test_a_kept_pairing_code_left_waiting_by_a_closed_window_is_not_sent_once_approved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stop keeps a stranger's code and the owner's notice of it; at the restart their
    reply windows are closed (iLink), so both wait for each one's next message. The owner
    approves the request meanwhile: the code no longer works, so neither goes out when they
    write again (the stranger got "Pairing code ..." before the answer to their message),
    said in the log; the rest of the owner's own reply kept with them still goes."""
    world, state, gw = await code_waits_for_pacing(tmp_path, **NOTIFYING)
    await world.drive(gw.close(grace_s=0.5))
    assert world.texts(to="wxid_stranger") == []
    (code,) = {i.pairing_code for i in outbox_rows(state) if i.pairing_code is not None}
    told_alice = len(world.texts(to="wxid_alice"))

    closed = {"wxid_alice", "wxid_stranger"}
    config = {"channels": {"wechat": {**OPEN, **PACED, **NOTIFYING}}}
    gateway = windowed(world, state, config, closed, Bot(world))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="wechat_sdk"):
        await gateway.start()
        try:
            await world.login()
            await world.run_until_idle()
            assert world.texts(to="wxid_stranger") == []  # all of it waits for the user
            assert {i.state for i in outbox_rows(state)} == {"waiting"}
            await gateway.pairing.approve(code)
            closed.clear()  # (the windows open as each writes again)

            await world.say("wxid_alice", "hi")
            to_alice = world.texts(to="wxid_alice")[told_alice:]
            assert to_alice[-1] == "echo hi"
            assert not any("wants to talk to the bot" in t for t in to_alice), to_alice
            assert to_alice[:-1] and all(t in CHUNKS for t in to_alice[:-1])  # her reply's rest
            await world.say("wxid_stranger", "thanks!")
            assert world.texts(to="wxid_stranger") == ["echo thanks!"]  # no stale code
            assert outbox_rows(state) == []
        finally:
            await gateway.close()
    gone = [r for r in caplog.records if "reason=pairing_not_pending" in r.getMessage()]
    assert gone and f"kept messages of pairing request {code} not sent" in gone[0].getMessage()


@pytest.mark.parametrize("approved_first", [False, True])
async def test_an_owners_notice_his_closed_window_holds_goes_after_his_next_message(
    tmp_path: Path, approved_first: bool
) -> None:
    """iLink: the owner has not written to the bot within his reply window when a
    stranger asks to pair: the notice waits for his next message and goes then, while the
    request is pending (not once it was approved meanwhile)."""
    world, state = new_world(), tmp_path / "state"
    closed = {"wxid_alice"}
    config = {"channels": {"wechat": {**OPEN, **NOTIFYING}}}
    gateway = windowed(world, state, config, closed, Bot(world))
    await gateway.start()
    try:
        await world.login()
        await world.say("wxid_stranger", "hello?")
        await world.run_until_idle()
        assert world.texts(to="wxid_alice") == []  # his window is closed: it waits
        (request,) = gateway.pairing.list()
        if approved_first:
            await gateway.pairing.approve(request.code)
        closed.clear()  # (his window opens as he writes)
        await world.say("wxid_alice", "hi")
        await world.run_until_idle()
        told = world.texts(to="wxid_alice")
        notices = [t for t in told if f"Code: {request.code}" in t]
        assert len(notices) == (0 if approved_first else 1), told
        assert told[-1] == "echo hi"
        assert outbox_rows(state) == []
    finally:
        await gateway.close()


async def test_a_kept_pairing_code_waiting_for_a_stranger_goes_when_they_write_again(
    tmp_path: Path,
) -> None:
    """A stop keeps a stranger's code; at the restart their reply window is closed (iLink),
    so it waits for their next message. They write again while the request is pending:
    that message is not answered (they are not approved), but it opened their window, so
    the code goes then (it waited until the request expired: the stranger never had it)."""
    world, state, gw = await code_waits_for_pacing(tmp_path, **NOTIFYING)
    await world.drive(gw.close(grace_s=0.5))
    assert world.texts(to="wxid_stranger") == []
    (code,) = {i.pairing_code for i in outbox_rows(state) if i.pairing_code is not None}

    closed = {"wxid_alice", "wxid_stranger"}
    config = {"channels": {"wechat": {**OPEN, **PACED, **NOTIFYING}}}
    gateway = windowed(world, state, config, closed, Bot(world))
    await gateway.start()
    try:
        await world.login()
        await world.run_until_idle()
        assert world.texts(to="wxid_stranger") == []  # it waits for the stranger
        closed.discard("wxid_stranger")  # (their window opens as they write)
        await world.say("wxid_stranger", "still there?")
        await world.advance(60)
        told = "\n".join(world.texts(to="wxid_stranger"))
        assert code in told, told
        assert "echo" not in told  # (not approved: not answered)
        assert not [i for i in outbox_rows(state) if i.conversation_id == "wxid_stranger"]
    finally:
        await gateway.close()


async def test_an_owner_not_allowed_to_talk_gets_the_notice_his_window_held_when_he_writes(
    tmp_path: Path,
) -> None:
    """The owner told of requests is not in allowFrom (the notice is one way) and has not
    written within his reply window: the notice waits; when he writes, his message is
    not answered (he gets a code of his own, as a stranger), but the notice goes."""
    world, state = new_world(), tmp_path / "state"
    closed = {"wxid_owner"}
    config = {"channels": {"wechat": {**NOTIFYING, "pairingNotify": "wxid_owner"}}}
    gateway = windowed(world, state, config, closed, Bot(world))
    await gateway.start()
    try:
        await world.login()
        await world.say("wxid_stranger", "hello?")
        await world.run_until_idle()
        assert world.texts(to="wxid_owner") == []  # his window is closed: it waits
        (request,) = gateway.pairing.list()
        closed.clear()
        await world.say("wxid_owner", "hi")
        await world.advance(60)
        told = world.texts(to="wxid_owner")
        assert [t for t in told if f"Code: {request.code}" in t], told
        assert "echo hi" not in told
    finally:
        await gateway.close()


class RefusingSending:
    """An outbox whose next ``refusals`` marks of an item as being sent raise (the store
    out of reach for a moment); the rest passes through."""

    def __init__(self, outbox: Any, refusals: int) -> None:
        self._outbox, self.refusals = outbox, refusals

    def __getattr__(self, name: str) -> Any:
        return getattr(self._outbox, name)

    def set_state(self, item_id: int, state: str) -> None:
        if state == "sending" and self.refusals > 0:
            self.refusals -= 1
            raise ConnectionError("the store cannot be reached")
        self._outbox.set_state(item_id, state)


async def test_a_waiting_notice_the_store_cannot_mark_stays_kept_and_the_turn_is_answered(
    tmp_path: Path,
) -> None:
    """The owner's notice waits for his window; he writes, and the store cannot mark it
    as being sent: it is not sent now and stays kept (the next message takes it), and his
    own message is answered all the same (the store's error failed his whole turn)."""
    world, state = new_world(), tmp_path / "state"
    closed = {"wxid_alice"}
    store = MemoryStore()
    refusing = RefusingSending(store.outbox, refusals=0)
    store.outbox = refusing  # type: ignore[assignment]
    config = {"channels": {"wechat": {**OPEN, **NOTIFYING}}}
    gateway = windowed(world, state, config, closed, Bot(world), store=store)
    await gateway.start()
    try:
        await world.login()
        await world.say("wxid_stranger", "hello?")
        await world.advance(60)  # (the stranger's code went out, paced)
        (request,) = gateway.pairing.list()
        closed.clear()
        refusing.refusals = 1
        await world.say("wxid_alice", "hi")
        await world.advance(60)
        told = world.texts(to="wxid_alice")
        assert told == ["echo hi"], told
        assert [i.state for i in store.outbox.items("default")] == ["waiting"]
        await world.say("wxid_alice", "again")
        await world.advance(60)
        told = world.texts(to="wxid_alice")
        assert f"Code: {request.code}" in told[1] and told[2] == "echo again", told
        assert store.outbox.items("default") == []
    finally:
        await gateway.close()


class LeaseGoneSending(RefusingSending):
    """An outbox whose next mark of an item as being sent is refused: another gateway
    holds the account now (a fenced Redis write)."""

    def set_state(self, item_id: int, state: str) -> None:
        if state == "sending" and self.refusals > 0:
            self.refusals -= 1
            raise LeaseLost("default", "outbox write")
        self._outbox.set_state(item_id, state)


async def test_a_waiting_notice_whose_mark_finds_the_lease_lost_ends_the_turn_there(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store refuses to mark the owner's waiting notice as being sent because another
    gateway holds the account now: his turn ends there, as any write refused by the lease
    ends it (that gateway answers what is kept); the agent is not asked for nothing, and
    the log does not call it a store that cannot be reached."""
    world, state = new_world(), tmp_path / "state"
    closed = {"wxid_alice"}
    store = MemoryStore()
    refusing = LeaseGoneSending(store.outbox, refusals=0)
    store.outbox = refusing  # type: ignore[assignment]
    config = {"channels": {"wechat": {**OPEN, **NOTIFYING}}}
    bot = Bot(world)
    gateway = windowed(world, state, config, closed, bot, store=store)
    await gateway.start()
    try:
        await world.login()
        await world.say("wxid_stranger", "hello?")
        await world.advance(60)  # (the stranger's code went out, paced)
        closed.clear()
        refusing.refusals = 1
        caplog.clear()
        await world.say("wxid_alice", "hi")
        await world.advance(60)
        assert world.texts(to="wxid_alice") == []
        assert "hi" not in bot.texts()
        assert [i.state for i in store.outbox.items("default")] == ["waiting"]
        assert not [m for m in logged(caplog) if "could not mark a kept message" in m]
    finally:
        await gateway.close()


async def test_a_reply_waiting_for_a_sender_revoked_meanwhile_is_not_sent_to_them(
    tmp_path: Path,
) -> None:
    """iLink: the agent's reply to an approved sender waits for their next message (their
    reply window is closed). The owner revokes them meanwhile: their next message is not
    answered (a stranger's again, who gets a pairing code), and the agent's words that
    waited do not go to them either (the message opened their window, for the code)."""
    world, state = new_world(), tmp_path / "state"
    closed: set[str] = set()
    config = {"channels": {"wechat": {**PAIRING, "allowFrom": []}}}
    gateway = windowed(world, state, config, closed, Bot(world))
    await gateway.start()
    try:
        await world.login()
        await world.say("wxid_bob", "hello?")
        await world.run_until_idle()
        (request,) = gateway.pairing.list()
        await gateway.pairing.approve(request.code)
        closed.add("wxid_bob")  # (the agent's reply finds his window closed: it waits)
        await world.say("wxid_bob", "secret plans")
        await world.run_until_idle()
        assert [i.text for i in outbox_rows(state)] == ["echo secret plans"]
        assert gateway.pairing.revoke("default", "wxid_bob")
        closed.clear()  # (his window opens as he writes)
        told = len(world.texts(to="wxid_bob"))
        await world.say("wxid_bob", "still there?")
        await world.advance(60)
        now = world.texts(to="wxid_bob")[told:]
        assert [t for t in now if "wechat-sdk pairing approve" in t], now  # a new code
        assert not [t for t in now if "echo" in t], now  # (no longer let in: not his)
    finally:
        await gateway.close()


async def test_a_reply_waiting_behind_the_owners_notice_is_kept_by_a_stop(
    tmp_path: Path,
) -> None:
    """The agent answered, but the reply waits for its conversation (the owner's notice
    of a pairing request is going out to the same person) when the grace period ends:
    it is kept and goes out after the restart (it was lost: nothing of it was planned)."""
    world, state = new_world(), tmp_path / "state"
    gw = await started(world, state, Bot(world), **NOTIFYING)
    await world.say("wxid_stranger", "hello?", settle=False)
    await world.clock.advance(0.1)  # the code goes out; the notice to alice waits, paced
    await world.say("wxid_alice", "ping", settle=False)
    await world.clock.advance(0.1)  # answered at once: the reply waits behind the notice
    await world.drive(gw.close(grace_s=0.5))
    assert "echo ping" not in world.texts(to="wxid_alice")

    async with next_process(world, state, Bot(world), **NOTIFYING):
        texts = world.texts(to="wxid_alice")
        assert texts.count("echo ping") == 1
        assert "\n".join(texts).count("wants to talk to the bot") == 1
        assert texts[-1] == "echo ping"  # after the notice it waited behind, as it would have


async def test_a_kill_loses_neither_the_owners_notice_nor_the_reply_behind_it(
    tmp_path: Path,
) -> None:
    """The same, killed in the grace period instead: the notice (not planned yet when the
    stop began: it waited for the conversation) and the reply are both in the outbox."""
    import shutil

    world, state = new_world(), tmp_path / "state"
    gw = await started(world, state, Bot(world), **NOTIFYING)
    await world.say("wxid_alice", "long", settle=False)
    await world.clock.advance(1)  # alice's long reply is going out, paced
    await world.say("wxid_stranger", "hello?", settle=False)
    await world.clock.advance(0.1)  # the notice to alice waits behind her reply
    stopping = asyncio.ensure_future(gw.close(grace_s=60))
    await world.clock.advance(0.5)
    killed, sent_before = tmp_path / "killed", world.texts(to="wxid_alice")
    shutil.copytree(state, killed)  # what a kill leaves on disk, at this moment
    assert not any("wxid_stranger" in t for t in sent_before)
    await world.drive(stopping)  # (this process is gone: what it does next is not counted)

    async with restarted_from(killed, **NOTIFYING) as after:
        texts = [*sent_before, *after.texts(to="wxid_alice")]
        assert [t for t in texts if t in CHUNKS] == CHUNKS
        notice = [t for t in texts if t not in CHUNKS]  # (in chunks: textChunkLimit 100)
        assert "\n".join(notice).count("wants to talk to the bot") == 1
        assert notice[-1].startswith("Deny:") and len(notice) == len(set(notice))


async def test_a_kept_turn_asked_again_during_a_grace_period_survives_a_kill(
    tmp_path: Path,
) -> None:
    """A restart takes up a kept reply and a kept turn; a stop begins while the reply's
    rest goes out, and the turn is asked again during the grace period: a kill then must
    not lose it (it was marked as being sent and never journaled: the next start dropped
    it as a crash's)."""
    import shutil

    world, state = new_world(), tmp_path / "state"
    gw = await started(world, state, Bot(world))
    await world.say("wxid_alice", "long", settle=False)
    await world.say("wxid_alice", "slow", settle=False)  # waits behind "long"
    await world.clock.advance(1)
    await world.drive(gw.close(grace_s=1))
    assert {i.kind for i in outbox_rows(state)} == {"text", "turn"}

    second = make_gateway(world, state, Bot(world))
    await second.start()
    await world.clock.advance(1)  # the kept rest is going out, paced
    stopping = asyncio.ensure_future(second.close(grace_s=120))
    await world.clock.advance(40)  # the rest went out; "slow" is asked again, thinking
    assert world.texts(to="wxid_alice")[-1] == CHUNKS[-1]
    killed = tmp_path / "killed"
    shutil.copytree(state, killed)  # what a kill leaves on disk, at this moment
    await world.drive(stopping)  # (this process is gone: what it does next is not counted)

    async with restarted_from(killed) as after:
        assert after.texts(to="wxid_alice") == ["thought it over"]


async def test_an_error_notice_waiting_for_its_conversation_is_kept_by_a_stop(
    tmp_path: Path,
) -> None:
    """The agent failed while the owner's notice held the conversation: the error notice
    that answers the message waits, and a stop then keeps it (it was lost)."""

    async def failing(turn: AgentTurn) -> str:
        if turn.text == "ping":
            raise RuntimeError("the model is down")
        return f"echo {turn.text}"

    world, state = new_world(), tmp_path / "state"
    keys = {**NOTIFYING, "errorNotice": "Sorry, something went wrong."}
    gw = await started(world, state, failing, **keys)
    await world.say("wxid_stranger", "hello?", settle=False)
    await world.clock.advance(0.1)  # the notice to alice waits, paced
    await world.say("wxid_alice", "ping", settle=False)
    await world.clock.advance(0.1)  # the agent failed: its notice waits behind
    await world.drive(gw.close(grace_s=0.5))
    assert "Sorry, something went wrong." not in world.texts(to="wxid_alice")

    async with next_process(world, state, failing, **keys):
        assert world.texts(to="wxid_alice")[-1] == "Sorry, something went wrong."


async def test_what_a_stop_keeps_goes_out_in_the_order_it_would_have(tmp_path: Path) -> None:
    """A turn that came first but was answered later waits behind the owner's notice that
    came after it: the next start sends the rest of the notice, then the reply (it sent
    the reply in the middle of the notice, by the order they came)."""
    world, state = new_world(), tmp_path / "state"
    gw = await started(world, state, Bot(world), **NOTIFYING)
    await world.say("wxid_alice", "slow", settle=False)  # the agent thinks for a minute
    await world.clock.advance(58)
    await world.say("wxid_stranger", "hello?", settle=False)  # the notice to alice, paced
    await world.clock.advance(2.1)  # "slow" is answered: its reply waits behind the notice
    await world.drive(gw.close(grace_s=0.5))
    before = world.texts(to="wxid_alice")
    assert "thought it over" not in before and "Deny:" not in "\n".join(before)

    async with next_process(world, state, Bot(world), **NOTIFYING):
        texts = world.texts(to="wxid_alice")
        assert texts[-1] == "thought it over" and texts[-2].startswith("Deny:")
        assert "\n".join(texts).count("wants to talk to the bot") == 1


async def test_an_error_notice_with_the_puppet_at_a_kill_is_not_followed_by_another_answer(
    tmp_path: Path,
) -> None:
    """A streaming agent failed before saying a word: its error notice is with the puppet
    when a stop begins, and the process is killed. The notice stands for the reply: the
    next process neither asks the agent again nor answers a second time."""
    import shutil

    async def failing(turn: AgentTurn) -> AsyncIterator[str]:
        async def stream() -> AsyncIterator[str]:
            raise RuntimeError("the model is down")
            yield ""  # (an async generator)

        return stream()

    world, state = new_world(), tmp_path / "state"
    gw = await started(world, state, failing, errorNotice="Sorry, something went wrong.")
    world.fault("slow_send", seconds=20)
    await world.say("wxid_alice", "hi", settle=False)
    await world.clock.advance(1)  # the notice is with the puppet
    stopping = asyncio.ensure_future(gw.close(grace_s=30))
    await world.clock.advance(0.5)
    killed = tmp_path / "killed"
    shutil.copytree(state, killed)  # what a kill leaves on disk, at this moment
    await world.drive(stopping)  # (this process is gone: what it does next is not counted)

    async with restarted_from(killed) as after:
        assert after.texts(to="wxid_alice") == []  # (the notice went, or maybe: never twice)


async def test_a_kept_turn_asked_again_in_a_grace_period_is_never_marked_sending_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept turn asked again once a stop began is journaled as it begins, pending: it
    is not first marked ``sending`` (a kill right after that write made the next start
    drop it)."""
    import shutil

    world, state = new_world(), tmp_path / "state"
    gw = await started(world, state, Bot(world))
    await world.say("wxid_alice", "long", settle=False)
    await world.say("wxid_alice", "slow", settle=False)  # waits behind "long"
    await world.clock.advance(1)
    await world.drive(gw.close(grace_s=1))

    store = SqliteStore.in_state_dir(state, clock=world.clock)
    turn_ids = {i.id for i in store.outbox.items("default") if i.kind == "turn"}
    killed = tmp_path / "killed"
    real_set_state = store.outbox.set_state

    def set_state_then_killed(item_id: int, state_: Any) -> None:
        real_set_state(item_id, state_)
        if item_id in turn_ids and state_ == "sending" and not killed.exists():
            shutil.copytree(state, killed)  # a kill right after this write

    monkeypatch.setattr(store.outbox, "set_state", set_state_then_killed)
    second = make_gateway(world, state, Bot(world), store=store)
    await second.start()
    await world.clock.advance(1)  # the kept rest is going out, paced
    stopping = asyncio.ensure_future(second.close(grace_s=120))
    await world.clock.advance(40)  # the rest went out; "slow" is asked again, thinking
    if not killed.exists():
        shutil.copytree(state, killed)
    await world.drive(stopping)

    async with restarted_from(killed) as after:
        assert after.texts(to="wxid_alice") == ["thought it over"]


async def test_an_error_notice_after_a_stream_that_said_something_is_kept_by_a_stop(
    tmp_path: Path,
) -> None:
    """A stream sent a block, then failed; the owner's notice took the conversation
    meanwhile, and the error notice waits behind it when the grace period ends: the
    error notice is kept (it was lost: the stream's plan had begun, and stood for it)."""

    async def stream_then_fail(turn: AgentTurn) -> AsyncIterator[str]:
        async def stream() -> AsyncIterator[str]:
            yield "Here is the first part.\n\n"
            await world.clock.sleep(5)  # the owner's notice takes the conversation meanwhile
            raise RuntimeError("the model is down")

        return stream()

    world, state = new_world(), tmp_path / "state"
    keys = {**NOTIFYING, "errorNotice": "Sorry, something went wrong.", "blockStreaming": True}
    gw = await started(world, state, stream_then_fail, **keys)
    await world.say("wxid_alice", "tell me", settle=False)
    await world.clock.advance(1)  # the first block went out
    await world.say("wxid_stranger", "hello?", settle=False)  # the notice to alice
    await world.clock.advance(4.6)  # the stream failed: its error notice waits
    await world.drive(gw.close(grace_s=0.5))
    assert "Sorry, something went wrong." not in world.texts(to="wxid_alice")

    async with next_process(world, state, Bot(world), **keys):
        assert world.texts(to="wxid_alice").count("Sorry, something went wrong.") == 1


async def test_a_kill_during_the_grace_period_loses_no_turn_waiting_or_arriving(
    tmp_path: Path,
) -> None:
    """A kill in the grace period (docker stop's SIGKILL) loses neither a turn that was
    waiting behind another reply of its conversation when the stop began, nor one whose
    message came during the grace period: both are in the outbox when the process dies
    (their messages' journal left the outbox as the turns began, and their dedupe marks
    are durable), so the next process asks the agent about them."""
    import shutil

    world, state = new_world(), tmp_path / "state"
    gw = await started(world, state, Bot(world))
    await world.say("wxid_alice", "slow", settle=False)  # the agent thinks for a minute
    await world.clock.advance(1)
    await world.say("wxid_alice", "and then?", settle=False)  # waits behind "slow"
    await world.clock.advance(1)
    stopping = asyncio.ensure_future(gw.close(grace_s=30))
    await world.clock.advance(1)
    await world.say("wxid_alice", "still there?", settle=False)  # during the grace period
    await world.clock.advance(1)
    killed = tmp_path / "killed"
    shutil.copytree(state, killed)  # what a kill leaves on disk, at this moment
    assert world.texts(to="wxid_alice") == []
    await world.drive(stopping)  # (this process is gone: what it does next is not counted)

    after = new_world()
    bot = Bot(after)
    second = make_gateway(after, killed, bot)
    await second.start()
    await after.login()
    await after.run_until_idle()
    try:
        assert sorted(bot.texts()) == sorted(["slow", "and then?", "still there?"])
    finally:
        await second.close()


async def test_a_turn_the_stop_could_not_journal_is_kept_when_cut_once_the_store_writes(
    tmp_path: Path,
) -> None:
    """The store refuses the turn's journal as the stop begins (a moment of SQLITE_BUSY,
    a full disk freed since); when the grace period ends and the turn is cut, it is kept
    then, and asked again at the next start. It was logged "1 turn kept" with nothing in
    the store: lost."""
    world, state = new_world(), tmp_path / "state"
    store = SqliteStore.in_state_dir(state, clock=world.clock)
    gw = await started(world, state, Bot(world), store=store)
    await world.say("wxid_alice", "slow", settle=False)  # the agent thinks for a minute
    await world.clock.advance(1)
    refused = refusing_the_next_add(store)
    await world.drive(gw.close(grace_s=5))
    assert refused  # the journal's write was refused
    assert [i.kind for i in outbox_rows(state)] == ["turn"]

    after = new_world()
    bot = Bot(after)
    second = make_gateway(after, state, bot)
    await second.start()
    await after.login()
    await after.run_until_idle()
    try:
        assert bot.texts() == ["slow"]
    finally:
        await second.close()


async def test_a_message_taken_during_the_grace_period_is_answered_in_it(
    tmp_path: Path,
) -> None:
    # the grace is for the turns in flight and for those that begin meanwhile: a turn
    # that began during it was cut as soon as the first one ended (kept, not answered)
    world, state = new_world(), tmp_path / "state"

    async def thinker(turn: AgentTurn) -> str:
        await world.clock.sleep(2)
        return f"done {turn.text}"

    gw = await started(world, state, thinker)
    await world.say("wxid_alice", "first", settle=False)
    await world.clock.advance(0.5)
    stopping = asyncio.ensure_future(gw.close(grace_s=30))
    await world.clock.advance(0.5)
    await world.say("wxid_bob", "second", settle=False)  # during the grace period
    await world.drive(stopping)
    assert world.texts(to="wxid_alice") == ["done first"]
    assert world.texts(to="wxid_bob") == ["done second"]
    assert outbox_rows(state) == []  # nothing left to keep


async def test_a_reply_whose_journal_was_refused_at_the_stop_still_goes_out_in_the_grace(
    tmp_path: Path,
) -> None:
    # nothing of it is in the store, so nothing can go out twice: its messages go out
    # as they would without a stop (they were held back, and lost)
    world, state, store, gw = await replying_long(tmp_path)
    refused = refusing_the_next_add(store)
    await world.drive(gw.close(grace_s=60))
    assert refused
    assert world.texts(to="wxid_alice") == CHUNKS
    assert outbox_rows(state) == []


async def test_a_file_that_cannot_be_marked_at_the_stop_is_kept_not_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a file's failure does not end a reply, but one whose journal cannot be kept true
    # does: the file stays kept and goes out after the restart (it was deleted unsent)
    import sqlite3

    world, state = new_world(), tmp_path / "state"
    store = SqliteStore.in_state_dir(state, clock=world.clock)
    chart = OutboundFile(name="chart.png", kind="image", data=PNG, mime="image/png")
    bot = Bot(world, Reply(text=LONG, files=[chart]))
    gw = await started(world, state, bot, store=store)
    await world.say("wxid_alice", "long", settle=False)
    await world.clock.advance(1)
    stopping = asyncio.ensure_future(gw.close(grace_s=60))
    await world.clock.advance(0.5)  # the stop journaled the rest of the reply
    (file_row,) = [i for i in outbox_rows(state) if i.kind == "file"]
    real_set_state = store.outbox.set_state

    def set_state(item_id: int, state_: Any) -> None:
        if item_id == file_row.id:
            raise sqlite3.OperationalError("database or disk is full")
        real_set_state(item_id, state_)

    monkeypatch.setattr(store.outbox, "set_state", set_state)
    await world.drive(stopping)
    monkeypatch.undo()
    assert world.texts(to="wxid_alice") == CHUNKS
    assert [e.media for e in world.sent(to="wxid_alice") if e.media] == []
    assert [i.kind for i in outbox_rows(state)] == ["file"]

    async with next_process(world, state, bot):
        media = [e.media for e in world.sent(to="wxid_alice") if e.media]
        assert [(m or {}).get("name") for m in media] == ["chart.png"]


async def test_a_cut_reply_whose_journal_was_refused_is_kept_when_cut(
    tmp_path: Path,
) -> None:
    # the journal's write refused as the stop began, the grace ends with the reply half
    # sent: the rest is written then ("17 kept" was logged with nothing in the store)
    world, state, store, gw = await replying_long(tmp_path)
    refused = refusing_the_next_add(store)
    await world.drive(gw.close(grace_s=2))
    sent_before = world.texts(to="wxid_alice")
    assert refused and len(sent_before) < len(CHUNKS)
    assert len(outbox_rows(state)) == len(CHUNKS) - len(sent_before)

    async with next_process(world, state, Bot(world)):
        assert world.texts(to="wxid_alice") == CHUNKS
