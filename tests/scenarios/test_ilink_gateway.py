"""The gateway answers an iLink server it has never seen, through the public config only
(``puppet: "ilink"``, ``puppetOptions.baseUrl``): the simulator's standalone server in a
process of its own, driven through its control API as any project's tests would."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from simulator.ilink.process import serve_process
from wechat_sdk import AgentTurn, Gateway, parse_config

pytestmark = pytest.mark.slow  # the server runs in a process of its own

ALICE = "alice@im.wechat"


@pytest.fixture
async def served() -> AsyncIterator[str]:
    """The base URL of a ``wechat-sdk simulator serve`` process on a free port."""
    async with serve_process("--poll-hold-ms", "300") as simulator:
        yield simulator.base_url


async def sim(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    data = json.dumps(body) if body is not None else None
    async with http.request(method, url, data=data) as resp:
        assert resp.status in (200, 201), await resp.text()
        return await resp.json(content_type=None)


async def until(what: str, condition: Callable[[], Any], within_s: float = 10) -> None:
    for _ in range(int(within_s / 0.05)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def agent(turn: AgentTurn) -> str:
    return f"echo: {turn.text}"


async def test_the_gateway_answers_an_ilink_server_through_the_public_config(
    served: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = parse_config(
        f"""{{ channels: {{ wechat: {{
            puppet: "ilink",
            puppetOptions: {{ baseUrl: "{served}" }},
            dmPolicy: "open", allowFrom: ["*"], qrCode: false,
        }} }} }}"""
    )
    gateway = Gateway(config, agent=agent, state_dir=tmp_path)
    async with aiohttp.ClientSession() as http, gateway:
        status = gateway.status()[0]

        async def showing_qr() -> bool:
            return gateway.status()[0].qr_url is not None

        await until("a QR code", showing_qr)
        await sim(http, "POST", f"{served}sim/accounts/bot/login")

        async def ready() -> bool:
            return gateway.status()[0].lifecycle == "ready"

        await until("ready", ready)
        said = {"from": ALICE, "account": "bot", "text": "hello over iLink"}
        await sim(http, "POST", f"{served}sim/messages", said)

        async def answered() -> list[Any]:
            sent: list[Any] = await sim(http, "GET", f"{served}sim/sent?account=bot&to={ALICE}")
            return sent

        await until("the answer", answered)
        (reply,) = await answered()
        assert reply["text"] == "echo: hello over iLink"

        # the session expires on the server: the account says why, and a new QR code shows
        await sim(http, "POST", f"{served}sim/faults", {"kind": "logout", "account": "bot"})

        async def logged_out() -> bool:
            return gateway.status()[0].state == "logged_out: session expired"

        await until("logged out", logged_out)
        await until("a new QR code", showing_qr)
        status = gateway.status()[0]
    session = json.loads((tmp_path / "accounts" / "default" / "ilink-session.json").read_text())
    (token,) = session["earlier_tokens"]
    assert token not in json.dumps(status.to_json())
    assert token not in "\n".join(r.getMessage() for r in caplog.records)
