"""A reply whose ``sendmessage`` finds the iLink server refusing connections: nothing
left the gateway (the connection was never made), so it is sent again once the server
answers, once; an answer lost after the request went stays ``outcome_unknown``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from waiting import until

from simulator import SimulatedWeChat
from simulator.ilink import ILinkServer
from wechat_sdk import AgentTurn, Gateway, parse_config
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

    config = parse_config(
        f"""{{ channels: {{ wechat: {{
            puppet: "ilink",
            puppetOptions: {{ baseUrl: "{server.base_url}", cdnBaseUrl: "{server.cdn_base_url}" }},
            dmPolicy: "open", allowFrom: ["*"], qrCode: false,
        }} }} }}"""
    )
    try:
        async with Gateway(config, agent=agent, state_dir=tmp_path) as gateway:
            await world.login("default")
            await until("ready", lambda: gateway.status()[0].lifecycle == "ready")
            await world.say(ALICE, "are you there?", account="default", settle=False)
            await until("the answer", lambda: world.texts(to=ALICE) != [], 60)
            await asyncio.sleep(1.0)  # (and nothing more comes)
            assert world.texts(to=ALICE) == ["echo: are you there?"]
    finally:
        for restarted in back:
            await restarted.close()
