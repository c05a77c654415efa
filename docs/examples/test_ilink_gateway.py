"""An iLink account tested end to end: the gateway's own iLink transport against the
simulator's iLink server, configured as a real one would be (``puppet: "ilink"`` and the
server's address)."""

# --8<-- [start:test]
import asyncio

import pytest

from simulator import SimulatedWeChat
from wechat_sdk import Gateway, parse_config
from wechat_sdk.clock import RealClock

ALICE = "alice@im.wechat"


async def agent(turn):
    return f"echo: {turn.text}"


async def eventually(condition, within_s=10.0):
    for _ in range(int(within_s / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("it never happened")


@pytest.mark.asyncio  # no wechat fixture: marked for pytest-asyncio
async def test_an_ilink_account_answers_a_direct_message(tmp_path):
    world = SimulatedWeChat(clock=RealClock())  # served over HTTP: on the real clock
    world.add_account("default", transport="ilink")
    async with await world.ilink_server(poll_hold_s=0.5) as server:
        config = parse_config(
            f"""{{ channels: {{ wechat: {{
                puppet: "ilink",
                puppetOptions: {{
                    baseUrl: "{server.base_url}", cdnBaseUrl: "{server.cdn_base_url}",
                }},
                dmPolicy: "open", allowFrom: ["*"], qrCode: false,
            }} }} }}"""
        )
        async with Gateway(config, agent=agent, state_dir=tmp_path) as gateway:
            await world.login("default")  # the owner's phone scans the QR code
            await eventually(lambda: gateway.status()[0].lifecycle == "ready")

            await world.say(ALICE, "hello", account="default", settle=False)
            await eventually(lambda: world.texts(to=ALICE))

    assert world.texts(to=ALICE) == ["echo: hello"]


# --8<-- [end:test]
