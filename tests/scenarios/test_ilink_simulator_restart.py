"""A rehearsal that restarts ``wechat-sdk simulator serve`` on the same port while the
gateway runs on, keeping its state: the new process's messages are all answered, none
dropped as a duplicate of the old process's, nor taken as acknowledged by the old
process's cursor (each process numbers its messages from a start of its own)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import aiohttp
from standalone_simulator import sim
from waiting import until

from simulator.ilink.process import serve_process
from wechat_sdk import AgentTurn, Gateway, parse_config

ALICE = "alice@im.wechat"
SERVE = ("--account", "default", "--poll-hold-ms", "300")
#: the phone scans each QR code by itself: the gateway logs in on each server
AT_ONCE, LATER = ("--scan-after-ms", "50"), ("--scan-after-ms", "1500")


async def agent(turn: AgentTurn) -> str:
    return f"echo: {turn.text}"


async def say(http: aiohttp.ClientSession, base: str, text: str) -> None:
    said = {"from": ALICE, "account": "default", "text": text}
    await sim(http, "POST", f"{base}sim/messages", said)


async def answered(http: aiohttp.ClientSession, base: str, *texts: str) -> None:
    async def answers() -> bool:
        sent = await sim(http, "GET", f"{base}sim/sent?account=default")
        return {f"echo: {t}" for t in texts} <= {m["text"] for m in sent}

    await until(f"the answers to {texts}", answers, 20)


async def test_the_messages_of_a_restarted_simulator_are_answered(tmp_path: Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        async with serve_process(*SERVE, *AT_ONCE) as first:
            base = first.base_url
            config = parse_config(
                f"""{{ channels: {{ wechat: {{
                    puppet: "ilink", puppetOptions: {{ baseUrl: "{base}" }},
                    dmPolicy: "open", allowFrom: ["*"], qrCode: false,
                }} }} }}"""
            )
            gateway = await stack.enter_async_context(
                Gateway(config, agent=agent, state_dir=tmp_path)
            )
            await until("ready", lambda: gateway.status()[0].lifecycle == "ready", 20)
            await say(http, base, "one")
            await answered(http, base, "one")
        # the same command again on the same port; the gateway runs on, its state kept
        port = int(base.rstrip("/").rsplit(":", 1)[1])
        async with serve_process(*SERVE, *LATER, port=port) as second:
            assert second.base_url == base
            # said before the gateway logged in again: its first poll carries the cursor
            # of the old process
            await say(http, base, "two")
            await say(http, base, "three")
            await answered(http, base, "two", "three")
