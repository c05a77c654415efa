"""A puppet's own timeouts are its own: a send that uses ``asyncio.timeout`` (or
``asyncio.wait_for``) inside is an ordinary send to the gateway, never taken for a stop."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from simulator.world import SimulatedPuppet, SimulatedWeChat
from wechat_sdk.agent import AgentTurn
from wechat_sdk.config import parse_config
from wechat_sdk.gateway import Gateway
from wechat_sdk.puppet import SendError


class TimingOutPuppet(SimulatedPuppet):
    """The simulator's puppet, whose first ``fail`` sends time out on a timeout of its own
    (as a real adapter might wrap a slow call), raising a transient SendError."""

    fail = 1
    style = "timeout"

    async def send_text(
        self, conversation_id: str, text: str, mention_ids: tuple[str, ...] = ()
    ) -> str | None:
        if self.fail > 0:
            self.fail -= 1
            try:
                if self.style == "timeout":
                    async with asyncio.timeout(0):  # expires on the loop's next turn
                        await asyncio.Event().wait()
                else:
                    await asyncio.wait_for(asyncio.Event().wait(), 0)
            except TimeoutError:
                raise SendError("the service took too long", transient=True) from None
        return await super().send_text(conversation_id, text, mention_ids)


@pytest.mark.parametrize("style", ["timeout", "wait_for"])
async def test_a_send_that_times_out_on_its_own_timeout_is_retried_not_cut(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, style: str
) -> None:
    caplog.set_level(logging.INFO)
    world = SimulatedWeChat(seed=0)
    world.add_account("default")

    def factory(account: Any) -> SimulatedPuppet:
        sim = world.accounts[account.id]
        puppet = TimingOutPuppet(world, sim)
        puppet.style = style
        sim.puppet = puppet
        return puppet

    async def agent(turn: AgentTurn) -> str:
        return f"echo {turn.text}"

    config = parse_config(
        json.dumps({"channels": {"wechat": {"dmPolicy": "open", "allowFrom": ["*"]}}})
    )
    gateway = Gateway(
        config,
        agent=agent,
        puppet_factory=factory,
        state_dir=tmp_path,
        clock=world.clock,
        rng=world.rng_for("gateway"),
        show_terminal_qr=False,
    )
    await gateway.start()
    try:
        await world.login()
        await world.say("wxid_alice", "hello")
        await world.run_until_idle()
        assert world.texts(to="wxid_alice") == ["echo hello"]
        messages = [r.getMessage() for r in caplog.records]
        assert not any("cut by a stop" in m for m in messages), messages
        assert any("retrying" in m for m in messages), messages
        [status] = gateway.status()
        assert status.sent == 1 and status.send_failures == 0
    finally:
        await gateway.close()
