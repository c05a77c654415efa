"""What the agent gets of a quote and of a voice message: the quoted message's text
(AgentTurn.quoted_text) and the transport's transcript of the voice (MediaItem.transcript),
on the simulator's puppet and on the iLink adapter alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator import SimulatedWeChat
from wechat_sdk import AgentTurn
from wechat_sdk.agents import echo

WECHAT = {"dmPolicy": "open", "allowFrom": ["*"], "pacing": False}


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
