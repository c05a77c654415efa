"""The real gateway on the real Puppet Service: the Node sidecar with wechaty-puppet-mock.

The gateway is configured with ``puppet: "wechaty-puppet-service"`` and the sidecar's
endpoint and token, so the default puppet factory, the gRPC client, the Node server and
the mock are all real; the test drives the mock's Mocker over the sidecar's control
channel. Every scenario runs in plaintext and in TLS.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mock_peer import MockControl, mock_sidecar

from wechat_sdk import Gateway, parse_config
from wechat_sdk.adapters.wechaty.sidecar import Sidecar
from wechat_sdk.agent import AgentTurn, Reply
from wechat_sdk.puppet import OutboundFile

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG\r\n\x1a\n"


@dataclass
class Agent:
    """Echoes text; replies with a file when asked; remembers every turn."""

    turns: list[AgentTurn] = field(default_factory=list)

    async def __call__(self, turn: AgentTurn) -> str | Reply:
        self.turns.append(turn)
        if turn.text == "send me the report":
            data = bytes(range(256)) * 400  # 102,400 bytes: several Upload chunks
            return Reply(
                text="here it is",
                files=(OutboundFile(name="report.pdf", data=data, mime="application/pdf"),),
            )
        return f"echo: {turn.text}"


@dataclass
class Live:
    gateway: Gateway
    agent: Agent
    sidecar: Sidecar
    control: MockControl
    bot: str = ""

    async def until(self, what: str, check: Callable[[], Any], within: float = 20.0) -> Any:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    @property
    def status(self) -> str:
        return self.gateway.status()[0].lifecycle

    async def login(self) -> None:
        await self.until("a QR code", lambda: self.gateway.status()[0].qr_url)
        self.bot = str((await self.control("login"))["id"])
        await self.until("ready", lambda: self.status == "ready")

    async def sent(self, conversation: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = (await self.control("sent", conversation=conversation))["sent"]
        return rows

    async def texts(self, conversation: str, n: int) -> list[str]:
        async def enough() -> list[str] | None:
            rows = [r["text"] for r in await self.sent(conversation) if "text" in r]
            return rows if len(rows) >= n else None

        found: list[str] = await self.until(f"{n} messages to {conversation}", enough)
        return found

    async def contact(self, name: str) -> str:
        return str((await self.control("createContact", name=name))["id"])


def config_for(sidecar: Sidecar, tls: bool, **keys: Any) -> str:
    options: dict[str, Any] = {"endpoint": f"127.0.0.1:{sidecar.port}", "token": sidecar.token}
    if not tls:
        options["tls"] = False
    # with TLS, nothing to set: an insecure_ token means Wechaty's CA and server name
    wechat = {"puppet": "wechaty-puppet-service", "puppetOptions": options, "pacing": False}
    wechat.update(keys)
    return json.dumps({"channels": {"wechat": wechat}})


@pytest.fixture(params=[False, True], ids=["plaintext", "tls"])
def tls(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
async def start_live(tmp_path: Path, tls: bool) -> AsyncIterator[Callable[..., Any]]:
    made: list[Live] = []

    async def start(**keys: Any) -> Live:
        sidecar = mock_sidecar(tmp_path / "peer", tls=tls)
        await sidecar.start()
        assert sidecar.control_port is not None
        keys.setdefault("dmPolicy", "open")
        config = parse_config(config_for(sidecar, tls, **keys))
        agent = Agent()
        gateway = Gateway(config, agent=agent, state_dir=tmp_path / "state", show_terminal_qr=False)
        live = Live(gateway, agent, sidecar, MockControl(sidecar.control_port))
        made.append(live)
        await gateway.start()
        await live.login()
        return live

    yield start
    for live in made:
        await live.gateway.close()
        await live.sidecar.stop()


async def test_dm_echo_through_the_real_service(start_live: Callable[..., Any]) -> None:
    live: Live = await start_live()
    alice = await live.contact("Alice")
    await live.control("sayDm", **{"from": alice, "text": "hello"})
    assert await live.texts(alice, 1) == ["echo: hello"]
    turn = live.agent.turns[0]
    assert turn.sender_id == alice
    assert turn.sender_name == "Alice"
    assert turn.chat_type == "direct"


async def test_pairing_then_approved_sender_reaches_the_agent(
    start_live: Callable[..., Any],
) -> None:
    live: Live = await start_live(dmPolicy="pairing")
    bob = await live.contact("Bob")
    await live.control("sayDm", **{"from": bob, "text": "hi"})
    (challenge,) = await live.texts(bob, 1)
    code = re.search(r"wechat-sdk pairing approve ([A-Z0-9]+)", challenge)
    assert code is not None, challenge
    assert live.agent.turns == []
    await live.gateway.pairing.approve(code.group(1))
    await live.control("sayDm", **{"from": bob, "text": "now?"})
    texts = await live.texts(bob, 2)
    assert texts[-1] == "echo: now?"


async def test_group_answers_only_a_mention_by_id(start_live: Callable[..., Any]) -> None:
    live: Live = await start_live(groupPolicy="open")
    carol = await live.contact("Carol")
    dave = await live.contact("Dave")
    room = str((await live.control("createRoom", topic="Hiking", memberIds=[carol, dave]))["id"])
    await live.control("sayGroup", **{"from": carol, "room": room, "text": "who is coming?"})
    await live.control(
        "sayGroup",
        **{"from": dave, "room": room, "text": "bot, the weather?", "mentionIds": [live.bot]},
    )
    texts = await live.texts(room, 1)
    await asyncio.sleep(0.5)
    assert [t for t in (r.get("text") for r in await live.sent(room)) if t] == texts
    assert texts[0].endswith("echo: bot, the weather?")
    assert [t.sender_id for t in live.agent.turns] == [dave]
    assert live.agent.turns[0].mentioned


async def test_inbound_image_over_20kb_arrives_byte_for_byte(
    start_live: Callable[..., Any],
) -> None:
    live: Live = await start_live()
    erin = await live.contact("Erin")
    data = PNG + os.urandom(60_000)  # past the inline limit: a uuid FileBox and Download
    await live.control(
        "sendFile", **{"from": erin, "name": "photo.png", "base64": base64.b64encode(data).decode()}
    )
    await live.texts(erin, 1)
    (item,) = live.agent.turns[0].media
    assert item.kind == "image"
    assert item.size == len(data)
    assert item.path is not None
    assert item.path.read_bytes() == data


async def test_outbound_file_goes_up_by_upload(start_live: Callable[..., Any]) -> None:
    live: Live = await start_live()
    frank = await live.contact("Frank")
    await live.control("sayDm", **{"from": frank, "text": "send me the report"})

    async def the_file() -> list[dict[str, Any]]:
        return [r for r in await live.sent(frank) if "fileName" in r]

    (file,) = await live.until("the file", the_file)
    assert file == {"fileName": "report.pdf", "fileSize": 102_400}
    assert [r["text"] for r in await live.sent(frank) if "text" in r] == ["here it is"]


async def test_logout_then_login_again(start_live: Callable[..., Any]) -> None:
    live: Live = await start_live()
    gina = await live.contact("Gina")
    await live.control("logout")
    await live.until("logged_out", lambda: live.status == "logged_out")
    await live.login()
    await live.control("sayDm", **{"from": gina, "text": "back?"})
    assert await live.texts(gina, 1) == ["echo: back?"]


async def test_server_killed_and_restarted_gateway_reconnects_without_loss(
    start_live: Callable[..., Any], tmp_path: Path, tls: bool
) -> None:
    live: Live = await start_live()
    hank = await live.contact("Hank")
    await live.control("sayDm", **{"from": hank, "text": "before"})
    assert await live.texts(hank, 1) == ["echo: before"]

    port, token = live.sidecar.port, live.sidecar.token
    assert live.sidecar.process is not None
    live.sidecar.process.kill()
    await live.sidecar.stop()
    await live.until("the gateway to notice", lambda: live.status != "ready")

    # the same service comes back on the same address (a fresh mock: a new session)
    fresh = mock_sidecar(tmp_path / "peer", tls=tls)
    fresh.want_port, fresh.want_token = port, token
    await fresh.start()
    assert fresh.port == port and fresh.control_port is not None
    live.sidecar, live.control = fresh, MockControl(fresh.control_port)
    await live.login()
    ivy = await live.contact("Ivy")
    for n in range(5):
        await live.control("sayDm", **{"from": ivy, "text": f"after {n}"})
    assert await live.texts(ivy, 5) == [f"echo: after {n}" for n in range(5)]
    await asyncio.sleep(0.5)
    assert len(await live.sent(ivy)) == 5  # nothing twice
    status = live.gateway.status()[0]
    assert status.reconnects >= 1
