"""The "Garbage collection" example of the gateway page: a program of your own that runs
the Gateway and tunes the collector as `gateway run` does; and its test, on the simulator."""

# --8<-- [start:main]
import asyncio

from wechat_sdk import AgentTurn, Gateway, load_config
from wechat_sdk.gateway.service import tune_gc


async def agent(turn: AgentTurn) -> str:
    return f"echo: {turn.text}"


async def run(gateway: Gateway, stop: asyncio.Event) -> None:
    async with gateway:  # the accounts start here (and are closed at the end)
        tune_gc()  # once started, as `wechat-sdk gateway run` does
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(run(Gateway(load_config(), agent=agent), asyncio.Event()))
# --8<-- [end:main]


import gc  # noqa: E402  (the test below the shown example)
import tempfile  # noqa: E402

import pytest  # noqa: E402

from simulator import SimulatedWeChat  # noqa: E402


@pytest.mark.asyncio
async def test_the_program_answers_with_the_collector_tuned():
    threshold = gc.get_threshold()
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    stop = asyncio.Event()
    with tempfile.TemporaryDirectory() as state_dir:
        config = '{ channels: { wechat: { dmPolicy: "open", allowFrom: ["*"] } } }'
        gateway = world.gateway(config, agent, state_dir=state_dir)
        task = asyncio.create_task(run(gateway, stop))
        try:
            await world.login()  # (waits for the account's QR code)
            await world.say("wxid_alice", "hello")
            assert world.texts(to="wxid_alice") == ["echo: hello"]
            assert gc.get_threshold()[0] >= 10_000 and gc.get_freeze_count() > 0
        finally:
            stop.set()
            await task
            gc.unfreeze()
            gc.set_threshold(*threshold)
