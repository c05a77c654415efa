"""A reply whose ``sendmessage`` finds the iLink server refusing connections, or its
address swallowing them (a connect that never completes): nothing left the gateway (the
connection was never made), so it is sent again once the server answers, once; an
answer lost after the request went stays ``outcome_unknown``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest
from ilink_worlds import ilink_config
from silent_servers import connects_hang
from waiting import until

from simulator import SimulatedWeChat
from simulator.ilink import ILinkServer
from wechat_sdk import AgentTurn, Gateway, WindowClosed
from wechat_sdk.adapters.ilink import api as ilink_api
from wechat_sdk.adapters.ilink import sending
from wechat_sdk.clock import RealClock

ALICE = "alice@im.wechat"


async def test_a_reply_the_server_refused_to_connect_for_goes_when_it_is_back(
    tmp_path: Path,
) -> None:
    world = SimulatedWeChat(clock=RealClock())
    world.add_account("default", transport="ilink")
    world.add_contact(ALICE, name="Alice")
    server = await world.ilink_server(poll_hold_s=0.3)
    back: list[ILinkServer] = []

    async def agent(turn: AgentTurn) -> str:
        await server.close()  # the server goes away while the answer is made

        async def again() -> None:
            await asyncio.sleep(1.0)
            restarted = ILinkServer(world, poll_hold_s=0.3)
            await restarted.start(port=server.port)
            back.append(restarted)

        asyncio.get_running_loop().create_task(again())
        return f"echo: {turn.text}"

    try:
        async with Gateway(ilink_config(server), agent=agent, state_dir=tmp_path) as gateway:
            await world.login("default")
            await until("ready", lambda: gateway.status()[0].lifecycle == "ready")
            await world.say(ALICE, "are you there?", account="default", settle=False)
            await until("the answer", lambda: world.texts(to=ALICE) != [], 60)
            await asyncio.sleep(1.0)  # (and nothing more comes)
            assert world.texts(to=ALICE) == ["echo: are you there?"]
    finally:
        for restarted in back:
            await restarted.close()


async def test_a_reply_whose_connect_never_completed_goes_once_when_the_server_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the server's address swallows each SYN while the answer is made: the send's
    # connect never completes, so nothing left; it is not given up as may-have-gone-out
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(ilink_api, "CONNECT_S", 0.5)
    world = SimulatedWeChat(clock=RealClock())
    world.add_account("default", transport="ilink")
    world.add_contact(ALICE, name="Alice")
    server = await world.ilink_server(poll_hold_s=0.3)
    hung = contextlib.AsyncExitStack()

    async def agent(turn: AgentTurn) -> str:
        await server.close()
        await hung.enter_async_context(connects_hang(server.port))
        return f"echo: {turn.text}"

    def send_failed() -> bool:
        return any("send failed" in r.getMessage() for r in caplog.records)

    back = ILinkServer(world, poll_hold_s=0.3)
    try:
        async with Gateway(ilink_config(server), agent=agent, state_dir=tmp_path) as gateway:
            await world.login("default")
            await until("ready", lambda: gateway.status()[0].lifecycle == "ready")
            await world.say(ALICE, "are you there?", account="default", settle=False)
            await until("the send's first attempt ended", send_failed, 60)
            await hung.aclose()
            await back.start(port=server.port)  # the server answers again
            await until("the answer", lambda: world.texts(to=ALICE) != [], 60)
            await asyncio.sleep(1.0)  # (and nothing more comes)
            assert world.texts(to=ALICE) == ["echo: are you there?"]
    finally:
        await hung.aclose()
        await back.close()


async def test_after_ilink_refuses_a_user_with_ret_2_all_along_nothing_goes_until_they_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """iLink's own reply window closed before the gateway's count says (it answers the
    same ``ret -2`` as for its rate limit): the reply fails after the adapter's five tries
    (not five more rounds of the gateway's), the window is closed, and a send before the
    user writes again raises WindowClosed without asking the server; their next message
    is answered."""
    monkeypatch.setattr(sending, "RATE_LIMIT_WAITS_S", (0.01, 0.01, 0.01, 0.01))
    world = SimulatedWeChat(clock=RealClock())
    world.add_account("default", transport="ilink")
    world.add_contact(ALICE, name="Alice")

    async def agent(turn: AgentTurn) -> str:
        return f"echo: {turn.text}"

    async with (
        await world.ilink_server(poll_hold_s=0.3) as server,
        Gateway(ilink_config(server), agent=agent, state_dir=tmp_path) as gateway,
    ):
        await world.login("default")
        await until("ready", lambda: gateway.status()[0].lifecycle == "ready")
        world.fault("rate_limit", account="default", count=sending.SEND_ATTEMPTS)
        await world.say(ALICE, "hi", account="default", settle=False)
        faults = world.accounts["default"].faults
        await until("the refusals", lambda: faults["rate_limit"] == 0)
        await asyncio.sleep(2.0)  # (long enough for a retry of the gateway's to go)
        assert world.texts(to=ALICE) == []
        world.fault("rate_limit", account="default")  # (what the server would answer)
        with pytest.raises(WindowClosed):
            await gateway.send(ALICE, "a follow-up")
        assert faults["rate_limit"] == 1  # (the server was not asked)
        faults["rate_limit"] = 0
        await world.say(ALICE, "more", account="default", settle=False)
        await until("the answer", lambda: world.texts(to=ALICE) == ["echo: more"], 30)
