"""Nothing lost, nothing twice: what an adversarial pass found, as conversations.

A reply whose send outcome is unknown is never sent a second time on a timer alone, and
nothing that answers a message (a pairing code waiting for its pacing included) holds
the reading of the events that would show its echo.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.agent import AgentTurn

OPEN: dict[str, Any] = {"dmPolicy": "open", "allowFrom": ["*"]}
#: the default pacing, written out
PACED: dict[str, Any] = {"pacing": {"perSecond": 1, "burst": 1, "chunkGapMs": 1000}}


async def test_a_lost_send_on_a_silent_stream_goes_out_once(
    wechat: WeChatHarness, caplog: pytest.LogCaptureFixture
) -> None:
    world = wechat.world

    async def agent(turn: AgentTurn) -> str:
        # the link goes quiet (nothing arrives, the echo included) and the send's own
        # answer is lost: nothing can tell whether the reply went out
        world.fault("heartbeat_silence")
        world.fault("send_lost_reply")
        return f"echo {turn.text}"

    gw = await wechat.gateway(agent, **OPEN)
    await world.say("wxid_alice", "hello")
    await world.advance(300)  # the watchdog reconnects; nothing is sent again
    assert world.texts(to="wxid_alice") == ["echo hello"]
    [status] = gw.status()
    assert status.sent == 0 and status.send_failures == 1  # not reported sent
    assert any("outcome_unknown" in r.getMessage() for r in caplog.records)


async def test_a_pairing_codes_unknown_outcome_does_not_send_it_twice(
    wechat: WeChatHarness,
) -> None:
    world = wechat.world

    async def agent(turn: AgentTurn) -> str:
        return f"echo {turn.text}"

    await wechat.gateway(agent, **PACED)
    world.fault("send_lost_reply")  # the code went out, but its answer was lost
    await world.say("wxid_stranger", "hi, who is this?")
    await world.advance(60)
    codes = [t for t in world.texts(to="wxid_stranger") if "Pairing code" in t]
    assert len(codes) == 1


async def test_a_friends_reply_behind_a_strangers_pacing_is_sent_once(
    wechat: WeChatHarness,
) -> None:
    world = wechat.world

    async def agent(turn: AgentTurn) -> str:
        return f"echo {turn.text}"

    await wechat.gateway(agent, allowFrom=["wxid_friend"], **PACED)
    for i in range(3):  # strangers' pairing codes queue up behind the pacing
        await world.say(f"wxid_stranger{i}", "hello?", settle=False)
    world.fault("send_lost_reply", count=4)  # every send's answer lost; the echoes come
    await world.say("wxid_friend", "are you there?", settle=False)
    await world.run_until_idle()
    await world.advance(120)
    assert world.texts(to="wxid_friend") == ["echo are you there?"]
    for i in range(3):  # (three pending requests at most, by default)
        assert len(world.texts(to=f"wxid_stranger{i}")) == 1


async def test_the_events_are_read_while_a_pairing_code_waits_for_its_pacing(
    wechat: WeChatHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """The reading of events goes on while a send waits: a friend's message that comes
    after a stranger's is answered in the order pacing allows, not after the code."""
    caplog.set_level(logging.INFO)
    world = wechat.world
    order: list[str] = []

    async def agent(turn: AgentTurn) -> str:
        order.append(turn.text)
        return f"echo {turn.text}"

    await wechat.gateway(agent, allowFrom=["wxid_friend"], **PACED)
    await world.say("wxid_a", "hi", settle=False)
    await world.say("wxid_b", "hi", settle=False)
    await world.say("wxid_friend", "first", settle=False)
    # no virtual time passes: the pacing holds the codes, yet the friend's turn has begun
    for _ in range(50):
        await asyncio.sleep(0)
    assert order == ["first"]
    await world.run_until_idle()
    assert world.texts(to="wxid_friend") == ["echo first"]


async def test_a_forced_logout_loses_no_reply_and_no_message(
    wechat: WeChatHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Replies written when the phone logs the bot out wait for the next login (kept by a
    restart); a message that came while logged out is new, not history: it is answered."""
    world = wechat.world

    async def agent(turn: AgentTurn) -> str:
        if turn.text == "slow":
            await world.clock.sleep(60)
        return f"echo {turn.text}"

    gw = await wechat.gateway(agent, **OPEN)
    await world.say("wxid_alice", "slow", settle=False)
    world.fault("logout")  # the agent is still thinking
    await world.advance(120)  # its reply is written, and waits: no retries burnt
    assert world.texts(to="wxid_alice") == []
    await world.say("wxid_bob", "are you there?")  # arrives while logged out
    await world.advance(120)
    # the owner restarts the gateway and scans again, minutes later
    await world.drive(gw.stop())  # the waiting reply is kept in the outbox
    await gw.start()
    await world.login()
    await world.run_until_idle()
    assert world.texts(to="wxid_alice") == ["echo slow"]
    assert world.texts(to="wxid_bob") == ["echo are you there?"]
    assert not any("retries_exhausted" in r.getMessage() for r in caplog.records)
