"""The gateway answers an iLink server it has never seen, through the public config only
(``puppet: "ilink"``, ``puppetOptions.baseUrl``): the simulator's standalone server in a
process of its own, driven through its control API as any project's tests would."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from standalone_simulator import sim
from waiting import until

from wechat_sdk import AgentTurn, Gateway, parse_config

pytestmark = pytest.mark.slow  # the server runs in a process of its own

ALICE = "alice@im.wechat"


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
