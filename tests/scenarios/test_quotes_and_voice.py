"""What the agent gets of a quote and of a voice message: the quoted message's text
(AgentTurn.quoted_text) and the transport's transcript of the voice (MediaItem.transcript),
on the simulator's puppet and on the iLink adapter alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from simulator import SimulatedWeChat
from wechat_sdk import AgentTurn
from wechat_sdk.agents import echo

WECHAT = {"dmPolicy": "open", "allowFrom": ["*"], "pacing": False}
ALICE = "alice@im.wechat"
Said = Callable[[], Awaitable[None]]


@pytest.mark.parametrize("transport", ["puppet", "ilink"])
async def test_the_agent_gets_the_quoted_text_and_the_voice_transcript(
    tmp_path: Path, transport: str
) -> None:
    world = SimulatedWeChat(seed=5)
    world.add_account("default", transport=transport)  # type: ignore[arg-type]
    alice = world.add_contact("alice@im.wechat", "Alice").id
    turns: list[AgentTurn] = []

    async def agent(turn: AgentTurn) -> str:
        turns.append(turn)
        return "ok"

    puppet = {"puppet": "ilink"} if transport == "ilink" else {}
    config = {"channels": {"wechat": {**WECHAT, **puppet}}}
    gateway = world.gateway(config, agent, state_dir=tmp_path)
    try:
        async with gateway:
            await world.login()
            (first,) = await world.say(alice, "the first message")
            await world.say(alice, "what did I mean?", quote=first)
            await world.say(alice, "call me at noon", media={"kind": "audio", "duration": 2.0})
            await world.run_until_idle()
            await gateway.wait_idle()
    finally:
        await world.close()
    assert [t.quoted_text for t in turns] == [None, "the first message", None]
    (voice,) = turns[2].media
    assert voice.kind == "audio" and voice.transcript == "call me at noon"
    assert turns[0].media == ()


async def test_an_ilink_world_account_needs_the_ilink_puppet_in_the_config(
    tmp_path: Path,
) -> None:
    world = SimulatedWeChat(seed=5)
    world.add_account("default", transport="ilink")
    gateway = world.gateway({"channels": {"wechat": WECHAT}}, echo, state_dir=tmp_path)
    with pytest.raises(ValueError, match='puppet: "ilink"'):
        world.puppet_factory(gateway.accounts.accounts["default"])


Turns = list[tuple[AgentTurn, list[bytes | None]]]


async def ilink_turns(world: SimulatedWeChat, tmp_path: Path, say: Said) -> Turns:
    """What the agent of the world's iLink account gets of what ``say`` has Alice say,
    with the bytes of each file it gets."""
    turns: Turns = []

    async def agent(turn: AgentTurn) -> str:
        turns.append((turn, [m.path.read_bytes() if m.path else None for m in turn.media]))
        return "ok"

    config = {"channels": {"wechat": {**WECHAT, "puppet": "ilink"}}}
    gateway = world.gateway(config, agent, state_dir=tmp_path)
    try:
        async with gateway:
            await world.login()
            await say()
            await world.run_until_idle()
            await gateway.wait_idle()
    finally:
        await world.close()
    return turns


def ilink_world() -> SimulatedWeChat:
    world = SimulatedWeChat(seed=5)
    world.add_account("default", transport="ilink")
    world.add_contact(ALICE, "Alice")
    return world


async def test_an_ilink_message_of_a_voice_and_an_image_gives_the_agent_the_image(
    tmp_path: Path,
) -> None:
    world = ilink_world()
    said: list[str] = []

    async def say() -> None:
        with world.ilink_state.bot("default").one_message():  # one message: [voice, image]
            said.extend(await world.say(ALICE, "is it ripe?", media={"kind": "audio"}))
            said.extend(await world.say(ALICE, media={"kind": "image"}))

    [(turn, files)] = await ilink_turns(world, tmp_path, say)
    [item] = turn.media
    assert item.kind == "image"
    assert files == [world.message_data(said[1])]
    assert turn.text == "is it ripe?"  # the voice's transcript


async def test_an_ilink_text_quoting_an_image_gives_the_agent_that_image(
    tmp_path: Path,
) -> None:
    world = ilink_world()

    async def say() -> None:
        [image] = await world.say(ALICE, media={"kind": "image"})
        await world.say(ALICE, "what is in it?", quote=image)

    [(_, [image]), (turn, files)] = await ilink_turns(world, tmp_path, say)
    [item] = turn.media
    assert item.kind == "image" and files == [image]  # the quoted image's bytes
    assert (turn.text, turn.quoted_text) == ("what is in it?", "[image]")
