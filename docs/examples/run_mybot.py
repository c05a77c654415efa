"""Run mybot on the simulator, without pytest: `python run_mybot.py`."""

import asyncio
import json
import tempfile

from mybot import agent

from simulator import SimulatedWeChat

CONFIG = '{ channels: { wechat: { name: "Molty", dmPolicy: "open", allowFrom: ["*"] } } }'


async def main() -> None:
    world = SimulatedWeChat(seed=0)
    world.add_account("default", name="Molty")
    world.add_contact("wxid_alice", name="Alice")
    with tempfile.TemporaryDirectory() as state_dir:
        # the gateway `wechat-sdk gateway run` starts, on the simulated WeChat instead of a
        # real one, in virtual time (pacing delays take none), seeded (the same run every time)
        gateway = world.gateway(CONFIG, agent, state_dir=state_dir)
        async with gateway:
            await world.login("default")  # scan and confirm the QR code
            await world.say("wxid_alice", "hello")
            await world.say("wxid_alice", "what's the weather?")
        for entry in world.transcript:
            print(json.dumps(entry.to_json(), ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
