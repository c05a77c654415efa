"""An iLink account whose server stops answering (every poll refused, or taken and never
answered) is not ``ready``: it shows ``reconnecting``, as any account whose link is down,
until the server answers again; then it is ``ready`` with its kept login (no QR code) and
answers as before. Long polls that end in their time, answered or not, are healthy."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from ilink_worlds import ilink_config
from silent_servers import never_answers
from waiting import until

from simulator import SimulatedWeChat
from simulator.ilink import ILinkServer
from simulator.ilink import server as server_module
from wechat_sdk import AgentTurn, Gateway
from wechat_sdk.adapters.ilink import api as ilink_api
from wechat_sdk.adapters.ilink import puppet as ilink_puppet
from wechat_sdk.clock import RealClock

ALICE = "alice@im.wechat"


async def agent(turn: AgentTurn) -> str:
    return f"echo: {turn.text}"


async def test_an_account_whose_ilink_server_does_not_answer_is_reconnecting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    world = SimulatedWeChat(clock=RealClock())
    world.add_account("default", transport="ilink")
    world.add_contact(ALICE, name="Alice")
    server = await world.ilink_server(poll_hold_s=0.3)
    config = ilink_config(server)
    back: ILinkServer | None = None
    try:
        async with Gateway(config, agent=agent, state_dir=tmp_path) as gateway:
            await world.login("default")
            await until("ready", lambda: gateway.status()[0].lifecycle == "ready")
            await server.close()  # every poll is refused from now on

            await until("reconnecting", lambda: gateway.status()[0].lifecycle == "reconnecting", 20)
            for _ in range(15):  # and it stays so while the server is down: never ready
                await asyncio.sleep(0.2)
                assert gateway.status()[0].lifecycle in ("reconnecting", "starting")
            assert gateway.status()[0].reconnects >= 1
            lines = [r.getMessage() for r in caplog.records]
            assert any("reason=ilink_unreachable" in line for line in lines), lines

            back = ILinkServer(world, poll_hold_s=0.3)  # the server answers again
            await back.start(port=server.port)
            await until("ready again", lambda: gateway.status()[0].lifecycle == "ready", 30)
            assert gateway.status()[0].qr_url is None  # the kept login: no scan
            await world.say(ALICE, "still there?", account="default", settle=False)
            await until("the answer", lambda: world.texts(to=ALICE) == ["echo: still there?"])
        scans = [r for r in caplog.records if "Scan QR Code at" in r.getMessage()]
        assert len(scans) == 1
    finally:
        if back is not None:
            await back.close()


#: (faster than the real server's 35 s: the server holds polls 0.3 s, says so, and the
#: puppet waits 0.5 s more for each answer)
QUICK_HOLD_MS, QUICK_MARGIN_S = 300, 0.5


def quick_polls(monkeypatch: pytest.MonkeyPatch, longest_ms: int = 120_000) -> None:
    monkeypatch.setattr(server_module, "LONGPOLL_TIMEOUT_MS", QUICK_HOLD_MS)
    monkeypatch.setattr(ilink_puppet, "POLL_HINT_MS", (100, longest_ms))
    monkeypatch.setattr(ilink_puppet, "POLL_MARGIN_S", QUICK_MARGIN_S)


async def test_an_account_whose_ilink_server_takes_polls_and_never_answers_is_reconnecting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    quick_polls(monkeypatch)
    world = SimulatedWeChat(clock=RealClock())
    world.add_account("default", transport="ilink")
    world.add_contact(ALICE, name="Alice")
    async with (
        await world.ilink_server(poll_hold_s=QUICK_HOLD_MS / 1000) as server,
        Gateway(ilink_config(server), agent=agent, state_dir=tmp_path) as gateway,
    ):
        await world.login("default")
        await until("ready", lambda: gateway.status()[0].lifecycle == "ready")
        for _ in range(10):  # long polls that end empty, in their time: healthy
            await asyncio.sleep(0.2)
            assert gateway.status()[0].lifecycle == "ready"

        # the server takes the next 3 polls and answers none within its own hold (and
        # the margin): hung
        world.fault("slow_poll", "default", count=3, seconds=3 * QUICK_MARGIN_S)
        await until("reconnecting", lambda: gateway.status()[0].lifecycle == "reconnecting", 20)
        lines = [r.getMessage() for r in caplog.records]
        assert any(
            "did not answer 3 polls in a row" in line and "reason=ilink_unreachable" in line
            for line in lines
        ), lines

        # it answers again: ready, with its kept login, and answering
        await until("ready again", lambda: gateway.status()[0].lifecycle == "ready", 30)
        assert gateway.status()[0].qr_url is None
        await world.say(ALICE, "still there?", account="default", settle=False)
        await until("the answer", lambda: world.texts(to=ALICE) == ["echo: still there?"])


async def test_an_account_whose_ilink_server_hangs_on_every_call_is_never_ready_until_it_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a hung server takes every call (polls, and notifystart at the next start) and
    # answers none: the account stays reconnecting, never ready between two starts
    caplog.set_level(logging.INFO)
    quick_polls(monkeypatch)
    monkeypatch.setattr(ilink_api, "LIGHT_CALL_S", 2 * QUICK_MARGIN_S)
    world = SimulatedWeChat(clock=RealClock())
    world.add_account("default", transport="ilink")
    world.add_contact(ALICE, name="Alice")
    server = await world.ilink_server(poll_hold_s=QUICK_HOLD_MS / 1000)
    back = ILinkServer(world, poll_hold_s=QUICK_HOLD_MS / 1000)
    try:
        async with Gateway(ilink_config(server), agent=agent, state_dir=tmp_path) as gateway:
            await world.login("default")
            await until("ready", lambda: gateway.status()[0].lifecycle == "ready")
            await server.close()
            seen: list[str] = []

            def started_again_or_ready() -> bool:
                status = gateway.status()[0]
                seen.append(status.lifecycle)
                return status.reconnects >= 2 or status.lifecycle == "ready"

            async with never_answers(server.port):
                await until("reconnecting", lambda: gateway.status()[0].lifecycle != "ready", 20)
                await until("a start that fails too", started_again_or_ready, 60)
            assert "ready" not in seen, sorted(set(seen))
            lines = [r.getMessage() for r in caplog.records]
            assert any("did not answer notifystart" in line for line in lines), lines

            await back.start(port=server.port)  # it answers again: ready, kept login
            await until("ready again", lambda: gateway.status()[0].lifecycle == "ready", 30)
            assert gateway.status()[0].qr_url is None
            await world.say(ALICE, "still there?", account="default", settle=False)
            await until("the answer", lambda: world.texts(to=ALICE) == ["echo: still there?"])
        scans = [r for r in caplog.records if "Scan QR Code at" in r.getMessage()]
        assert len(scans) == 1
    finally:
        await back.close()


async def test_polls_that_the_server_holds_past_the_longest_wait_are_healthy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the server says it holds polls longer than the puppet waits (a hint over the
    # longest of POLL_HINT_MS, cut down to it): a poll that ends unanswered is normal
    caplog.set_level(logging.INFO)
    quick_polls(monkeypatch, longest_ms=QUICK_HOLD_MS // 3)
    world = SimulatedWeChat(clock=RealClock())
    world.add_account("default", transport="ilink")
    world.add_contact(ALICE, name="Alice")
    hold_s = 3 * QUICK_MARGIN_S  # (each poll cut at 0.1 + 0.5 s)
    async with (
        await world.ilink_server(poll_hold_s=hold_s) as server,
        Gateway(ilink_config(server), agent=agent, state_dir=tmp_path) as gateway,
    ):
        await world.login("default")
        await until("ready", lambda: gateway.status()[0].lifecycle == "ready")
        for _ in range(25):  # 5 s: polls cut by the puppet, never answered
            await asyncio.sleep(0.2)
            assert gateway.status()[0].lifecycle == "ready"
        await world.say(ALICE, "hello", account="default", settle=False)
        await until("the answer", lambda: world.texts(to=ALICE) == ["echo: hello"])
    assert not [r for r in caplog.records if "getupdates failed" in r.getMessage()]
