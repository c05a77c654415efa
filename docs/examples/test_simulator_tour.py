"""The simulator examples of the "Testing your bot" page, as tests."""

import asyncio

import pytest

from simulator import SimulatedWeChat


async def agent(turn):
    return f"you said {turn.text}"


def test_a_world():
    # --8<-- [start:world]
    from simulator import SimulatedWeChat

    world = SimulatedWeChat(seed=0)
    # --8<-- [end:world]
    assert world.elapsed == 0


async def test_inbound_traffic(wechat):
    world = wechat.world
    room = world.add_room(members=["wxid_bob"])
    await wechat.gateway(agent, dmPolicy="open", allowFrom=["*"], mentionAll=True)
    # --8<-- [start:say]
    await world.say("wxid_alice", "hi")  # a DM to the default account
    await world.say("wxid_bob", "dinner?", room=room.id)  # a group message
    await world.say("wxid_bob", "dinner?", room=room.id, mention=True)  # ... mentioning the bot
    await world.say("wxid_bob", "everyone!", room=room.id, mention_all=True)
    await world.say("wxid_alice", media={"kind": "image", "name": "cat.png", "size": 40_000})
    await world.say("wxid_alice", media={"kind": "audio", "size": 8_000, "duration": 4.5})
    # --8<-- [end:say]
    # the @all is not the bot's own mention, so it stays in the text
    assert world.texts(room=room.id) == ["you said dinner?", "you said @所有人\u2005everyone!"]
    assert world.texts(to="wxid_alice")[0] == "you said hi"


async def test_faults(wechat):
    world = wechat.world
    await wechat.gateway(agent, dmPolicy="open", allowFrom=["*"])
    # --8<-- [start:fault]
    world.fault("send_fail", count=2)
    await world.say("wxid_alice", "still there?")
    assert world.texts(to="wxid_alice")[-1] == "you said still there?"  # after two retries
    # --8<-- [end:fault]


async def test_a_paced_call_runs_as_a_task(wechat):
    world = wechat.world
    gw = await wechat.gateway(agent)
    # --8<-- [start:task]
    sending = asyncio.create_task(gw.send("wxid_alice", "good morning"))
    await world.run_until_idle()
    await sending
    # --8<-- [end:task]
    assert world.texts(to="wxid_alice") == ["good morning"]


async def test_drive_awaits_while_the_world_runs(wechat):
    world = wechat.world
    gw = await wechat.gateway(agent)
    # --8<-- [start:drive]
    await world.drive(gw.send("wxid_alice", "good morning"))
    # --8<-- [end:drive]
    assert world.texts(to="wxid_alice") == ["good morning"]


async def run_once(tmp_path, seed):
    from simulator.pytest_plugin import WeChatHarness

    world = SimulatedWeChat(seed=seed)
    world.add_account("default")
    wechat = WeChatHarness(world, tmp_path / f"state-{seed}-{len(list(tmp_path.iterdir()))}")
    try:
        await wechat.gateway(agent)
        await world.say(world.add_contact().id, "hello")
        return world
    finally:
        await wechat.close()


@pytest.mark.asyncio
async def test_same_seed_same_transcript(tmp_path):
    expected_json = (await run_once(tmp_path, seed=7)).transcript_json()
    world = await run_once(tmp_path, seed=7)
    # --8<-- [start:determinism]
    assert world.transcript_json() == expected_json
    # --8<-- [end:determinism]
