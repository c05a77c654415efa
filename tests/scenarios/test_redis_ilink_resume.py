"""An iLink account's session on the store's Redis: a second gateway (another machine:
an empty state directory, the same config) takes the account up where the first stopped,
with no new QR code, the message said meanwhile answered once, and nothing answered twice.
On the standalone simulator (``wechat-sdk simulator serve``) and a real redis-server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from standalone_simulator import sim
from waiting import until

from wechat_sdk import AgentTurn, Gateway, parse_config

pytestmark = pytest.mark.slow  # the server runs in a process of its own

ALICE = "alice@im.wechat"


async def agent(turn: AgentTurn) -> str:
    return f"echo: {turn.text}"


async def test_another_gateway_resumes_an_ilink_account_from_redis(
    served: str, tmp_path: Path, redis_url: str, redis_namespace: str
) -> None:
    config = parse_config(
        f"""{{ channels: {{ wechat: {{
            puppet: "ilink",
            puppetOptions: {{ baseUrl: "{served}" }},
            dmPolicy: "open", allowFrom: ["*"], qrCode: false,
            store: {{ kind: "redis", url: "{redis_url}", namespace: "{redis_namespace}" }},
        }} }} }}"""
    )
    async with aiohttp.ClientSession() as http:

        async def sent() -> list[str]:
            rows = await sim(http, "GET", f"{served}sim/sent?account=bot&to={ALICE}")
            return [r["text"] for r in rows]

        first = Gateway(config, agent=agent, state_dir=tmp_path / "first")
        async with first:

            async def showing_qr() -> bool:
                return first.status()[0].qr_url is not None

            await until("a QR code", showing_qr)
            await sim(http, "POST", f"{served}sim/accounts/bot/login")
            said = {"from": ALICE, "account": "bot", "text": "one"}
            await sim(http, "POST", f"{served}sim/messages", said)

            async def answered_one() -> bool:
                return await sent() == ["echo: one"]

            await until("the first answer", answered_one)
        # no gateway runs: the user writes again
        await sim(http, "POST", f"{served}sim/messages", {**said, "text": "two"})

        second = Gateway(config, agent=agent, state_dir=tmp_path / "second")
        async with second:

            async def answered_two() -> bool:
                return await sent() == ["echo: one", "echo: two"]

            await until("the second answer", answered_two)
            assert second.status()[0].qr_url is None
            await sim(http, "POST", f"{served}sim/messages", {**said, "text": "three"})

            async def answered_three() -> bool:
                return len(await sent()) == 3

            await until("the third answer", answered_three)
            await asyncio.sleep(0.5)  # (time for a second answer to show, if there were one)
        assert await sent() == ["echo: one", "echo: two", "echo: three"]
        qrcodes = await sim(http, "GET", f"{served}sim/qrcodes")
        assert len(qrcodes) == 1  # the second gateway needed no QR code
    # nothing of the session was kept on the second machine's disk
    assert not list((tmp_path / "second").glob("accounts/*/ilink-*"))
