"""pytest fixtures for testing a bot on the simulator (registered as a pytest11 entry point).

async def test_my_bot(wechat):
    gateway = await wechat.gateway(my_agent, dmPolicy="open", allowFrom=["*"])
    await wechat.world.say("wxid_alice", "hello")
    assert wechat.world.texts(to="wxid_alice") == ["you said hello"]
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from simulator.world import SimulatedWeChat
from wechat_sdk.agent import Agent
from wechat_sdk.config import Config, parse_config
from wechat_sdk.gateway import Gateway

__all__ = ["WeChatHarness", "wechat", "wechat_world"]


class WeChatHarness:
    """A simulated world plus gateways on it, all cleaned up after the test."""

    def __init__(self, world: SimulatedWeChat, state_dir: Path) -> None:
        self.world = world
        self.state_dir = state_dir
        self.gateways: list[Gateway] = []

    async def gateway(
        self,
        agent: Agent,
        config: Config | dict[str, Any] | str | None = None,
        *,
        login: bool | list[str] = True,
        **wechat: Any,
    ) -> Gateway:
        """Start a gateway on the world with ``agent`` and log its accounts in.

        ``config`` is a whole config (model, dict or JSON5 text); keyword arguments are
        ``channels.wechat`` keys (``dmPolicy="open", allowFrom=["*"]``).
        """
        if config is None:
            config = {"channels": {"wechat": wechat}}
        if isinstance(config, dict):
            config = parse_config(json.dumps(config))
        elif isinstance(config, str):
            config = parse_config(config)
        gw = Gateway(
            config,
            agent=agent,
            puppet_factory=self.world.puppet_factory,
            state_dir=self.state_dir,
            clock=self.world.clock,
            rng=self.world.rng_for("gateway"),
            show_terminal_qr=False,
        )
        self.gateways.append(gw)
        await gw.start()
        accounts = list(gw.runners) if login is True else list(login) if login else []
        for account_id in accounts:
            await self.world.login(account_id)
        return gw

    async def close(self) -> None:
        for gw in self.gateways:
            await gw.close()


@pytest.fixture
def wechat_world() -> SimulatedWeChat:
    """A fresh simulated WeChat (seed 0) with one bot account, ``default``."""
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    return world


@pytest.fixture
async def wechat(wechat_world: SimulatedWeChat, tmp_path: Path) -> AsyncIterator[WeChatHarness]:
    """The simulated world (``wechat.world``) and ``await wechat.gateway(agent, **keys)``."""
    harness = WeChatHarness(wechat_world, tmp_path / "state")
    try:
        yield harness
    finally:
        await harness.close()
