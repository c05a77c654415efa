"""The assistant from the config on the real Puppet Service (the Node sidecar with
wechaty-puppet-mock), with a real MCP server from PyPI (``mcp-server-time``, installed by
the e2e session) and the fake OpenAI-compatible model over HTTP."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from mock_peer import MockControl, mock_sidecar
from waiting import until

from simulator.fake_model import FakeModel, ModelStep
from wechat_sdk import Gateway, parse_config
from wechat_sdk.assistants import ConfiguredAssistant

pytestmark = pytest.mark.e2e

if importlib.util.find_spec("mcp_server_time") is None:
    if os.environ.get("WECHAT_SDK_E2E_REQUIRED") == "1":
        raise RuntimeError("the e2e session installs mcp-server-time: it is missing")
    pytest.skip("needs mcp-server-time (nox -s e2e installs it)", allow_module_level=True)


def time_then_answer(body: dict[str, Any]) -> ModelStep:
    """Asks the time tool when it is offered, then answers with what it said."""
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if results:
        data = json.loads(results[-1])
        return ModelStep(text=f"In UTC it is {data['datetime'][11:16]} on a {data['day_of_week']}.")
    if any(t["function"]["name"] == "get_current_time" for t in body.get("tools", [])):
        return ModelStep(tool_calls=[("get_current_time", {"timezone": "UTC"})])
    return ModelStep(text="I cannot tell the time here.")


Live = tuple[Gateway, MockControl, FakeModel]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Starts the gateway on the service; ``group_tools``: the groups' tools allowlist."""
    closing: list[Callable[[], Any]] = []

    async def run(group_tools: list[str], script: Any = time_then_answer, **keys: Any) -> Live:
        model = FakeModel(script)
        closing.append(model.close)
        base_url = await model.serve()
        sidecar = mock_sidecar(tmp_path / "peer")
        await sidecar.start()
        closing.append(sidecar.stop)
        assert sidecar.control_port is not None
        server = {"command": sys.executable, "args": ["-m", "mcp_server_time"]}
        wechat = {
            "puppet": "wechaty-puppet-service",
            "puppetOptions": {
                "endpoint": f"127.0.0.1:{sidecar.port}",
                "token": sidecar.token,
                "tls": False,
            },
            "pacing": False,
            "dmPolicy": "open",
            "allowFrom": ["*"],
            "groups": {"*": {"requireMention": False, "tools": group_tools}},
            **keys,
            "agent": {
                "baseUrl": base_url,
                "apiKey": "sk-e2e-not-a-real-key",
                "model": "fake",
                "mcpServers": {"time": server},
            },
        }
        config = parse_config(json.dumps({"channels": {"wechat": wechat}}))
        gateway = Gateway(
            config,
            agent=ConfiguredAssistant(),
            state_dir=tmp_path / "state",
            show_terminal_qr=False,
        )
        closing.append(gateway.close)
        control = MockControl(sidecar.control_port)
        await gateway.start()
        await until("a QR code", lambda: gateway.status()[0].qr_url, 30)
        await control("login")
        await until("ready", lambda: gateway.status()[0].lifecycle == "ready", 30)
        return gateway, control, model

    yield run
    for close in reversed(closing):
        await close()


async def texts(control: MockControl, conversation: str, n: int) -> list[str]:
    async def enough() -> list[str] | None:
        rows = (await control("sent", conversation=conversation))["sent"]
        found = [r["text"] for r in rows if "text" in r]
        return found if len(found) >= n else None

    result: list[str] = await until(f"{n} messages to {conversation}", enough, 30)
    return result


async def test_a_dm_is_answered_with_the_time_tool(start: Callable[..., Any]) -> None:
    _, control, model = await start(["time"])
    alice = str((await control("createContact", name="Alice"))["id"])
    await control("sayDm", **{"from": alice, "text": "what time is it?"})
    (answer,) = await texts(control, alice, 1)
    assert answer.startswith("In UTC it is ") and answer.endswith("day.")
    assert len(model.requests) == 2


@pytest.mark.parametrize(
    ("group_tools", "offered"),
    [(["time"], True), (["get_current_time"], True), (["weather"], False)],
)
async def test_a_group_gets_the_tools_its_allowlist_names(
    start: Callable[..., Any], group_tools: list[str], offered: bool
) -> None:
    _, control, model = await start(group_tools)
    carol = str((await control("createContact", name="Carol"))["id"])
    dave = str((await control("createContact", name="Dave"))["id"])
    room = str((await control("createRoom", topic="Trip", memberIds=[carol, dave]))["id"])
    await control("sayGroup", **{"from": carol, "room": room, "text": "what time is it?"})
    (answer,) = await texts(control, room, 1)
    names = {t["function"]["name"] for t in model.requests[0].get("tools", [])}
    if offered:
        assert "In UTC it is" in answer
        assert "get_current_time" in names
    else:
        assert answer.endswith("I cannot tell the time here.")
        assert names == set()


async def test_a_long_answer_streams_in_blocks_and_history_follows(
    start: Callable[..., Any],
) -> None:
    text = " ".join(f"Step {i} of the plan is written out here in full." for i in range(10))
    steps = [ModelStep(text=text, piece_chars=5), ModelStep(text="Yes, step 3.")]
    _, control, model = await start(
        ["time"], steps, draftChunk={"minChars": 100, "maxChars": 200, "idleMs": 60_000}
    )
    alice = str((await control("createContact", name="Alice"))["id"])
    await control("sayDm", **{"from": alice, "text": "the plan?"})
    blocks = await texts(control, alice, 3)
    assert all(len(b) <= 200 for b in blocks) and all(len(b) >= 100 for b in blocks[:-1])
    assert "".join(blocks).replace(" ", "") == text.replace(" ", "")
    await control("sayDm", **{"from": alice, "text": "is there a step 3?"})
    await texts(control, alice, len(blocks) + 1)
    history = [(m["role"], m["content"]) for m in model.requests[1]["messages"][1:]]
    assert history[0] == ("user", "the plan?")
    assert history[1][0] == "assistant" and "Step 9" in history[1][1]


async def test_a_failing_model_gets_the_user_the_notice(start: Callable[..., Any]) -> None:
    _, control, model = await start(
        ["time"], [ModelStep(status=500)], errorNotice="Sorry, try again later."
    )
    bob = str((await control("createContact", name="Bob"))["id"])
    await control("sayDm", **{"from": bob, "text": "hello?"})
    assert await texts(control, bob, 1) == ["Sorry, try again later."]
    assert len(model.requests) == 3  # the first try and maxRetries (2)
