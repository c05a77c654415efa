"""A gateway on a simulated world without the wechat fixture (Testing your bot)."""

import pytest

from simulator import Recorder, SimulatedWeChat
from wechat_sdk.stores import MemoryStore


# an async test without the wechat fixture: pytest-asyncio runs it when marked (or in auto mode)
@pytest.mark.asyncio
async def test_a_gateway_of_my_own_on_the_world(tmp_path):
    world = SimulatedWeChat(seed=7)
    world.add_account("default", name="Molty")
    agent = Recorder()
    config = {"channels": {"wechat": {"dmPolicy": "open", "allowFrom": ["*"]}}}
    # the world's puppets, clock and seed; store= is Gateway's own argument
    gateway = world.gateway(config, agent, state_dir=tmp_path, store=MemoryStore())
    async with gateway:  # started here, closed at the end
        await world.login()  # scan and confirm the QR code
        await world.say("wxid_alice", "hello")
        assert gateway.status()[0].sent == 1
    assert world.texts(to="wxid_alice") == ["echo: hello"]
    assert [turn.sender_id for turn in agent.turns] == ["wxid_alice"]
