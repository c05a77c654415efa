"""An iLink account whose server stops answering (every poll refused) is not ``ready``: it
shows ``reconnecting``, as any account whose link is down, until the server answers
again; then it is ``ready`` with its kept login (no QR code) and answers as before."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from waiting import until

from simulator import SimulatedWeChat
from simulator.ilink import ILinkServer
from wechat_sdk import AgentTurn, Gateway, parse_config
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
    config = parse_config(
        f"""{{ channels: {{ wechat: {{
            puppet: "ilink",
            puppetOptions: {{ baseUrl: "{server.base_url}", cdnBaseUrl: "{server.cdn_base_url}" }},
            dmPolicy: "open", allowFrom: ["*"], qrCode: false,
        }} }} }}"""
    )
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
