"""The ``wechat`` fixture's harness does what the "Testing your bot" page says: keyword
arguments are config keys, the world's accounts are the gateway's, and the end of a test
never hangs on a reply still under way."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from simulator import SimulatedWeChat
from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.agent import AgentTurn

OPEN = {"dmPolicy": "open", "allowFrom": ["*"]}


async def echo(turn: AgentTurn) -> str:
    return f"you said {turn.text}"


def world_with(*accounts: str) -> SimulatedWeChat:
    world = SimulatedWeChat(seed=0)
    for account_id in accounts:
        world.add_account(account_id)
    return world


async def test_closing_with_a_reply_under_way_lets_it_finish(tmp_path: Path) -> None:
    world = world_with("default")
    harness = WeChatHarness(world, tmp_path)
    await harness.gateway(echo, **OPEN)
    await world.say("wxid_alice", "hello", settle=False)
    await asyncio.wait_for(harness.close(), 60)  # (a hang guard, not a timing)
    assert world.texts(to="wxid_alice") == ["you said hello"]


async def test_keyword_arguments_are_laid_over_a_dict_config(tmp_path: Path) -> None:
    world = world_with("default")
    harness = WeChatHarness(world, tmp_path)
    try:
        await harness.gateway(echo, {"channels": {"wechat": {"name": "Helper"}}}, **OPEN)
        await world.say("wxid_alice", "hello")
        assert world.texts(to="wxid_alice") == ["you said hello"]  # open, not paired
    finally:
        await harness.close()


async def test_keyword_arguments_beside_a_text_config_are_refused(tmp_path: Path) -> None:
    harness = WeChatHarness(world_with("default"), tmp_path)
    with pytest.raises(TypeError, match="dmPolicy"):
        await harness.gateway(echo, '{channels: {wechat: {name: "Helper"}}}', dmPolicy="open")
    await harness.close()


async def test_every_bot_account_of_the_world_runs(tmp_path: Path) -> None:
    world = world_with("work", "home")
    world.add_account("dms", transport="ilink")
    harness = WeChatHarness(world, tmp_path)
    try:
        gw = await harness.gateway(echo, **OPEN)
        assert sorted(gw.runners) == ["dms", "home", "work"]
        for account_id in ("work", "home", "dms"):
            await world.say("wxid_alice", f"to {account_id}", account=account_id)
        replies = {e.account: e.text for e in world.sent(to="wxid_alice")}
        assert replies == {a: f"you said to {a}" for a in ("work", "home", "dms")}
    finally:
        await harness.close()


@pytest.mark.parametrize("keys", [{}, {"allowFrom": ["*"]}])
async def test_every_bot_account_runs_with_a_dict_config_too(
    tmp_path: Path, keys: dict[str, object]
) -> None:
    """A dict config without accounts ran the default account only: a message said to
    another of the world's accounts sat unread, without a word."""
    world = world_with("default", "work")
    harness = WeChatHarness(world, tmp_path)
    wechat: dict[str, object] = {"dmPolicy": "open", "allowFrom": ["*"]}
    try:
        gw = await harness.gateway(echo, {"channels": {"wechat": wechat}}, **keys)
        assert sorted(gw.runners) == ["default", "work"]
        await world.say("wxid_alice", "hi", account="work")
        assert world.texts(to="wxid_alice", account="work") == ["you said hi"]
    finally:
        await harness.close()
