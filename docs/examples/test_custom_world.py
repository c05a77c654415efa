"""A conftest.py-style override of the plugin's world (Testing your bot)."""

# --8<-- [start:fixture]
import pytest

from simulator import SimulatedWeChat


@pytest.fixture
def wechat_world():
    world = SimulatedWeChat(seed=42, mention_ids=False)
    world.add_account("default", name="Helper")
    return world


# --8<-- [end:fixture]


async def agent(turn):
    return f"you said {turn.text}"


async def test_the_override_is_used(wechat):
    assert wechat.world.seed == 42
    room = wechat.world.add_room(members=["wxid_bob"])
    await wechat.gateway(agent)
    # without mention ids, the "@Helper" text alone is the mention
    await wechat.world.say("wxid_bob", "ping", room=room.id, mention=True)
    assert wechat.world.texts(room=room.id) == ["you said ping"]
