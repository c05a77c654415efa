"""iLink's longest message, counted as Tencent's client counts it: 4,000 in JavaScript's
string length (UTF-16 code units), where an emoji beyond the BMP counts 2. End to end: the
real iLink adapter over HTTP to the simulator's iLink server, which refuses a longer text
as the real server is taken to; every reply of emoji-heavy text arrives whole, each
message within 4,000 units, no emoji split (a whole reply, a streamed one, and one the
reply window packs)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import regex
from ilink_worlds import ilink_world
from waiting import until

from simulator import SimulatedWeChat
from wechat_sdk import AgentTurn, Gateway
from wechat_sdk.stores import SqliteStore

pytestmark = pytest.mark.slow  # real HTTP on the real clock

ALICE = "alice@im.wechat"
FAMILY = "\N{MAN}\u200d\N{WOMAN}\u200d\N{GIRL}"  # one grapheme: 5 code points, 8 units
THUMBS = "\N{THUMBS UP SIGN}"  # 1 code point, 2 units
#: a webhook no one answers: its queue says when the reply is over, and how it ended
HOOK = {"url": "http://127.0.0.1:9/hook", "secret": "whsec_" + "QUFB" * 10 + "QUE="}


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def config(**more: Any) -> dict[str, Any]:
    account = {
        "puppet": "ilink",
        "dmPolicy": "open",
        "allowFrom": ["*"],
        "pacing": False,
        "qrCode": False,
        "webhooks": [HOOK],
        **more,
    }
    return {"channels": {"wechat": account}}


@pytest.fixture
async def world() -> AsyncIterator[SimulatedWeChat]:
    async with ilink_world(3, {ALICE: "Alice"}) as made:
        yield made


async def answered(world: SimulatedWeChat, agent: Any, state_dir: Path, **more: Any) -> list[str]:
    """What the bot sent Alice for one message, once the reply is over."""
    gateway: Gateway = world.gateway(config(**more), agent, state_dir=state_dir)
    await gateway.start()
    try:
        await world.login("default", within_s=15)
        await world.say(ALICE, "tell me", settle=False)
        await until("the reply's end", lambda: ended(state_dir))
    finally:
        await gateway.close()
    assert ended(state_dir) == ["reply.sent"]  # (not delivery.failed: a message refused)
    return [e.text or "" for e in world.sent(to=ALICE)]


def ended(state_dir: Path) -> list[str]:
    """The events that end a reply, so far."""
    with SqliteStore.in_state_dir(state_dir) as store:
        kinds = [json.loads(d.body)["type"] for d in store.webhooks.pending()]
    return [k for k in kinds if k in ("reply.sent", "delivery.failed")]


def assert_whole(sent: list[str], reply: str) -> None:
    """Each message within iLink's 4,000 units, the reply all there, no emoji split."""
    assert sent, "nothing was sent"
    assert all(units(text) <= 4000 for text in sent), [units(t) for t in sent]
    assert "".join("".join(sent).split()) == "".join(reply.split())
    for text in sent:
        # a cut between two graphemes leaves each message whole graphemes only
        assert not regex.match(r"\p{GCB=Extend}|\p{GCB=ZWJ}", text), text[:10]
        assert not text.endswith("\u200d"), text[-10:]
    assert "".join(sent).count(FAMILY) == reply.count(FAMILY)


async def test_an_emoji_heavy_reply_goes_out_in_messages_of_4000_units(
    world: SimulatedWeChat, tmp_path: Path
) -> None:
    # 3,000 characters, 5,400 units: one message by characters, too long for iLink; then a
    # run of families with no break at all (cut only between graphemes)
    reply = f"好的{THUMBS}" * 1000 + "\n\n" + FAMILY * 900

    async def agent(turn: AgentTurn) -> str:
        return reply

    assert_whole(await answered(world, agent, tmp_path), reply)


async def test_a_streamed_emoji_reply_goes_out_in_blocks_of_4000_units(
    world: SimulatedWeChat, tmp_path: Path
) -> None:
    reply = f"{THUMBS}好 " * 3000

    async def agent(turn: AgentTurn) -> AsyncIterator[str]:
        for i in range(0, len(reply), 500):
            yield reply[i : i + 500]

    sent = await answered(world, agent, tmp_path, draftChunk={"maxChars": 4000})
    assert_whole(sent, reply)


async def test_a_reply_packed_into_the_reply_window_keeps_each_message_within_4000_units(
    world: SimulatedWeChat, tmp_path: Path
) -> None:
    # chunks of at most 700 units: more than the window's 10 places, so packed into fewer
    reply = "\n\n".join(THUMBS * 600 for _ in range(12))

    async def agent(turn: AgentTurn) -> str:
        return reply

    sent = await answered(world, agent, tmp_path, textChunkLimit=700)
    assert len(sent) <= 10
    assert_whole(sent, reply)
