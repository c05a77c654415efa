"""The gateway at the edge of iLink's reply window, end to end: the real iLink adapter over
HTTP to the simulator's iLink server (which enforces the window as Tencent's does), on the
real clock. At most 10 bot messages per user message: a longer reply is packed into fewer
messages, what still does not fit waits (durably) for the user's next message with a
notice, a proactive send to a closed window raises WindowClosed, and "typing..." shows for
the whole turn."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ilink_worlds import ilink_world
from waiting import until

from simulator import SimulatedWeChat
from wechat_sdk import AgentTurn, Gateway, WindowClosed
from wechat_sdk.outbound.window import MORE_NOTICE
from wechat_sdk.stores import OutboxItem, SqliteStore

pytestmark = pytest.mark.slow  # real HTTP on the real clock

ALICE = "alice@im.wechat"
BOB = "bob@im.wechat"
CONFIG = {
    "channels": {
        "wechat": {
            "puppet": "ilink",
            "dmPolicy": "open",
            "allowFrom": ["*"],
            "pacing": False,
            "qrCode": False,
        }
    }
}
#: twelve paragraphs, no two of which fit in one 4,000-character message, nor one and
#: the notice that more follows
LONG = "\n\n".join(f"part {i}: " + "x" * 3_970 for i in range(12))


async def start(world: SimulatedWeChat, agent: Any, state_dir: Path) -> Gateway:
    gateway = world.gateway(CONFIG, agent, state_dir=state_dir)
    await gateway.start()
    await world.login("default", within_s=15)
    await until("ready", lambda: gateway.status()[0].lifecycle == "ready")
    return gateway


@pytest.fixture
async def world() -> AsyncIterator[SimulatedWeChat]:
    async with ilink_world(3, {ALICE: "Alice", BOB: "Bob"}) as made:
        yield made


async def long_then_short(turn: AgentTurn) -> str:
    return LONG if turn.text == "tell me everything" else f"short: {turn.text}"


def texts(world: SimulatedWeChat, to: str = ALICE) -> list[str]:
    return [e.text or "" for e in world.sent(to=to)]


async def test_a_reply_over_the_window_sends_ten_and_the_rest_after_the_next_message(
    world: SimulatedWeChat, tmp_path: Path
) -> None:
    gateway = await start(world, long_then_short, tmp_path)
    try:
        await world.say(ALICE, "tell me everything", settle=False)
        await until("ten messages", lambda: len(texts(world)) == 10)
        await asyncio.sleep(0.3)  # nothing more comes: the window is full
        sent = texts(world)
        assert len(sent) == 10
        assert sent[:9] == LONG.split("\n\n")[:9]  # in order, each once
        assert sent[9] == MORE_NOTICE  # the tenth place says more follows

        await world.say(ALICE, "and then?", settle=False)
        await until("the rest, then the answer", lambda: len(texts(world)) == 14)
        assert texts(world)[10:] == [*LONG.split("\n\n")[9:], "short: and then?"]
    finally:
        await gateway.close()


async def test_what_went_of_a_reply_and_its_rest_after_the_next_message_are_events(
    world: SimulatedWeChat, tmp_path: Path
) -> None:
    """``reply.sent`` says what went out each time: the ten places of the window, then
    the rest after the user's next message (it was no event), then the next answer."""
    hook = {"url": "http://127.0.0.1:9/hook", "secret": "whsec_" + "QUFB" * 10 + "QUE="}
    config = {"channels": {"wechat": {**CONFIG["channels"]["wechat"], "webhooks": [hook]}}}

    def replies() -> list[dict[str, Any]]:
        with SqliteStore.in_state_dir(tmp_path) as store:
            sent = [json.loads(d.body) for d in store.webhooks.pending()]
        return [e["data"] for e in sent if e["type"] == "reply.sent"]

    gateway = world.gateway(config, long_then_short, state_dir=tmp_path)
    await gateway.start()
    await world.login("default", within_s=15)
    try:
        await world.say(ALICE, "tell me everything", settle=False)
        await until("ten messages and their event", lambda: len(replies()) == 1)
        (first,) = replies()
        assert first["messages"] == 10 and first["text"] == "\n\n".join(texts(world))
        await world.say(ALICE, "and then?", settle=False)
        await until("two more events", lambda: len(replies()) == 3)
        _, rest, answer = replies()
        assert rest["inReplyTo"] == first["inReplyTo"]
        assert rest["text"] == "\n\n".join(LONG.split("\n\n")[9:]) and rest["messages"] == 3
        assert answer["text"] == "short: and then?"
    finally:
        await gateway.close()


async def test_what_waits_for_the_user_survives_a_restart_and_not_sent_at_start(
    world: SimulatedWeChat, tmp_path: Path
) -> None:
    gateway = await start(world, long_then_short, tmp_path)
    await world.say(ALICE, "tell me everything", settle=False)
    await until("ten messages", lambda: len(texts(world)) == 10)
    await gateway.close()
    with SqliteStore.in_state_dir(tmp_path) as store:
        waiting = [i for i in store.outbox.items("default") if i.state == "waiting"]
    # each marked with the message it answers: a kept turn of that message is answered
    assert len({i.turn for i in waiting}) == 1 and waiting[0].turn

    gateway = world.gateway(CONFIG, long_then_short, state_dir=tmp_path)
    await gateway.start()  # the kept bot token: no scan
    try:
        await until("ready", lambda: gateway.status()[0].lifecycle == "ready")
        await asyncio.sleep(0.3)
        assert len(texts(world)) == 10  # the window is still full: nothing at the start
        await world.say(ALICE, "go on", settle=False)
        await until("the rest, then the answer", lambda: len(texts(world)) == 14)
        assert texts(world)[10:] == [
            *LONG.split("\n\n")[9:],
            "short: go on",
        ]
    finally:
        await gateway.close()


async def test_kept_messages_the_window_refuses_at_a_start_wait_for_the_user(
    world: SimulatedWeChat, tmp_path: Path
) -> None:
    """What a stop kept goes out at the next start as far as the reply window takes it;
    what the window refuses (it filled, or a day passed while the gateway was down) waits
    for the user's next message, in order (it was deleted as failed: lost)."""
    gateway = await start(world, long_then_short, tmp_path)
    await world.say(ALICE, "hi", settle=False)
    await until("the answer", lambda: texts(world) == ["short: hi"])
    await gateway.close()
    with SqliteStore.in_state_dir(tmp_path) as store:  # what a stop kept: twelve messages
        kept = [
            OutboxItem("default", ALICE, "text", time.time(), text=f"kept {i}", dm=True)
            for i in range(12)
        ]
        store.outbox.add(kept)

    gateway = world.gateway(CONFIG, long_then_short, state_dir=tmp_path)
    await gateway.start()
    try:
        await until("the window's room", lambda: len(texts(world)) == 10)
        await asyncio.sleep(0.3)
        assert texts(world)[1:] == [f"kept {i}" for i in range(9)]  # the window is full
        await world.say(ALICE, "go on", settle=False)
        await until("the rest, then the answer", lambda: len(texts(world)) == 14)
        assert texts(world)[10:] == ["kept 9", "kept 10", "kept 11", "short: go on"]
    finally:
        await gateway.close()


async def test_a_reply_of_many_short_chunks_is_packed_into_fewer_messages(
    world: SimulatedWeChat, tmp_path: Path
) -> None:
    paragraphs = [f"point {i}." for i in range(30)]

    async def many(turn: AgentTurn) -> str:
        return "\n\n".join(paragraphs)

    config = {"channels": {"wechat": {**CONFIG["channels"]["wechat"], "textChunkLimit": 20}}}
    gateway = world.gateway(config, many, state_dir=tmp_path)
    await gateway.start()
    await world.login("default", within_s=15)
    try:
        await world.say(ALICE, "list them", settle=False)
        await until("the reply", lambda: len(texts(world)) >= 1)
        await asyncio.sleep(0.3)
        # 30 chunks of 20 characters do not fit 10 messages: packed into one
        assert texts(world) == ["\n\n".join(paragraphs)]
    finally:
        await gateway.close()


async def test_after_a_send_whose_answer_was_lost_an_overflow_is_kept_not_lost(
    world: SimulatedWeChat, tmp_path: Path
) -> None:
    """A send whose answer was lost may have gone out (it did here): it takes its place in
    the window, so a reply planned after it fits the places the server has left, and what
    does not fit waits for the user. It was planned on one place too many: its last
    message was refused by the server and lost, with no word that more would follow."""

    async def short(turn: AgentTurn) -> str:
        return f"short: {turn.text}"

    nine = "\n\n".join(LONG.split("\n\n")[:9])  # nine parts, no two in one message
    gateway = await start(world, short, tmp_path)
    try:
        await world.say(ALICE, "hi", settle=False)
        await until("the answer", lambda: texts(world) == ["short: hi"])
        world.fault("send_lost_reply", account="default")
        with pytest.raises(Exception, match="may or may not have gone out"):
            await gateway.send(ALICE, "ping")
        assert texts(world) == ["short: hi", "ping"]  # two of the window's ten places
        waiting: list[Any] = []
        await gateway.send(ALICE, nine, waiting=waiting)
        went = texts(world)[2:]
        assert len(went) == 8 and went[-1].endswith(MORE_NOTICE)
        assert [t[:7] for t in went[:7]] == [f"part {i}:" for i in range(7)]
        assert len(waiting) == 2
    finally:
        await gateway.close()


async def test_a_proactive_send_to_a_closed_window_raises_and_sends_nothing(
    world: SimulatedWeChat, tmp_path: Path
) -> None:
    gateway = await start(world, long_then_short, tmp_path)
    try:
        with pytest.raises(WindowClosed, match="reply window closed"):
            await gateway.send(BOB, "hello Bob")  # Bob never wrote
        assert texts(world, BOB) == []
        await world.say(BOB, "hi", settle=False)
        await until("the answer", lambda: len(texts(world, BOB)) == 1)
        assert await gateway.send(BOB, "a follow-up") == "a follow-up"
        assert texts(world, BOB)[-1] == "a follow-up"
    finally:
        await gateway.close()


def typing_log(world: SimulatedWeChat) -> list[tuple[float, int]]:
    """When (the world's elapsed seconds) Alice's client was told typing (1) or not (2)."""
    return [
        (e["t"], e["status"])
        for e in world.events_log
        if e["event"] == "typing" and e.get("to") == ALICE
    ]


async def test_typing_shows_for_the_whole_turn_and_is_cancelled_at_its_end(
    world: SimulatedWeChat, tmp_path: Path
) -> None:
    async def slow(turn: AgentTurn) -> None:
        await asyncio.sleep(0.2)
        return None  # silent: typing is cancelled all the same

    gateway = await start(world, slow, tmp_path)
    try:
        await world.say(ALICE, "are you there?", settle=False)
        await until("typing cancelled", lambda: [s for _, s in typing_log(world)][-1:] == [2])
        assert [status for _, status in typing_log(world)] == [1, 2]
        assert texts(world) == []
    finally:
        await gateway.close()


async def test_typing_goes_before_a_reply_that_takes_time_and_is_cancelled_after_it(
    world: SimulatedWeChat, tmp_path: Path
) -> None:
    async def thinking(turn: AgentTurn) -> str:
        await asyncio.sleep(0.2)
        return "thought about it"

    gateway = await start(world, thinking, tmp_path)
    try:
        await world.say(ALICE, "a hard question", settle=False)
        await until("typing cancelled", lambda: len(typing_log(world)) == 2)
        (shown_at, shown), (cancelled_at, cancelled) = typing_log(world)
        reply = world.sent(to=ALICE)[0]
        assert (shown, cancelled) == (1, 2)
        assert shown_at < reply.t <= cancelled_at
    finally:
        await gateway.close()


async def test_a_reply_ready_at_once_goes_without_typing_that_would_follow_it(
    world: SimulatedWeChat, tmp_path: Path
) -> None:
    async def instant(turn: AgentTurn) -> str:
        return "at once"

    gateway = await start(world, instant, tmp_path)
    try:
        await world.say(ALICE, "hi", settle=False)
        await until("the answer", lambda: texts(world, ALICE) == ["at once"])
        await asyncio.sleep(0.3)  # a typing call would have reached the server by now
        # shown after the reply was sent, "typing..." would only flicker
        assert typing_log(world) == []
    finally:
        await gateway.close()


async def streaming_gateway(world: SimulatedWeChat, agent: Any, state_dir: Path) -> Gateway:
    """A gateway streaming its replies in blocks (of 50-200 characters), logged in."""
    wechat = {
        **CONFIG["channels"]["wechat"],
        "blockStreaming": True,
        "draftChunk": {"minChars": 50, "maxChars": 200, "breakPreference": "paragraph"},
    }
    gateway = world.gateway({"channels": {"wechat": wechat}}, agent, state_dir=state_dir)
    await gateway.start()
    await world.login("default", within_s=15)
    return gateway


async def test_a_streamed_reply_keeps_the_last_place_for_the_rest_of_the_stream(
    world: SimulatedWeChat, tmp_path: Path
) -> None:
    blocks = [f"block {i} " + "y" * 100 for i in range(15)]

    async def streaming(turn: AgentTurn) -> AsyncIterator[str]:
        for block in blocks:
            yield block + "\n\n"

    gateway = await streaming_gateway(world, streaming, tmp_path)
    try:
        await world.say(ALICE, "stream it", settle=False)
        await until("ten messages", lambda: len(texts(world)) == 10)
        await asyncio.sleep(0.3)
        sent = texts(world)
        assert len(sent) == 10  # never more than the window takes
        # the first nine as they came; the rest of the stream packed into the tenth
        assert "\n\n".join(sent).split("\n\n") == blocks
    finally:
        await gateway.close()


async def test_what_a_failing_stream_said_before_it_failed_goes_out_in_the_last_place(
    world: SimulatedWeChat, tmp_path: Path
) -> None:
    """The agent fails after its blocks reached the window's last place: what it said
    goes out there (it was held back for the end of the stream), then the error notice
    waits for the user's next message."""
    blocks = [f"block {i} " + "y" * 100 for i in range(12)]

    async def failing(turn: AgentTurn) -> AsyncIterator[str]:
        for block in blocks:
            yield block + "\n\n"
        raise RuntimeError("the model went away")

    gateway = await streaming_gateway(world, failing, tmp_path)
    try:
        await world.say(ALICE, "stream it", settle=False)
        await until("ten messages", lambda: len(texts(world)) == 10)
        await asyncio.sleep(0.3)
        sent = texts(world)
        assert len(sent) == 10
        assert "\n\n".join(sent).split("\n\n") == blocks  # nothing the agent said lost
    finally:
        await gateway.close()


async def test_a_failing_stream_whose_held_blocks_cannot_be_sent_still_reports_the_agent(
    world: SimulatedWeChat, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The blocks held for the window's last place fail to go out as the agent fails: the
    send failure is the sender's to log; the agent's failure is still the turn's (logged,
    and its errorNotice tried)."""
    blocks = [f"block {i} " + "y" * 100 for i in range(12)]

    async def failing(turn: AgentTurn) -> AsyncIterator[str]:
        for block in blocks:
            yield block + "\n\n"
        await asyncio.sleep(0.3)  # the nine blocks before the last place went out
        world.fault("send_fail_permanent", count=5)  # the held blocks' send fails
        raise RuntimeError("the model went away")

    gateway = await streaming_gateway(world, failing, tmp_path)
    try:
        await world.say(ALICE, "stream it", settle=False)
        await until("nine messages", lambda: len(texts(world)) >= 9)
        await until("the agent's failure", lambda: "agent failed on message" in caplog.text)
    finally:
        await gateway.close()
