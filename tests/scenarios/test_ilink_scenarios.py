"""Scenario files with iLink accounts: the gateway's real iLink adapter against the world's
iLink server (over HTTP), in the world's virtual time."""

from __future__ import annotations

from pathlib import Path

import json5

from simulator.pytest_plugin import WeChatHarness
from simulator.scenario import run_scenario
from wechat_sdk.agents import echo

ROOT = Path(__file__).resolve().parents[2]
ALICE = "alice@im.wechat"


def scenario(steps: list[dict[str, object]], **wechat: object) -> str:
    config = {"name": "Helper", "puppet": "ilink", "dmPolicy": "open", "allowFrom": ["*"]}
    return json5.dumps(
        {
            "config": {"channels": {"wechat": {**config, **wechat}}},
            "agent": "echo",
            "world": {"contacts": [{"id": ALICE, "name": "Alice"}]},
            "steps": steps,
        }
    )


async def test_the_ilink_example_scenario_passes() -> None:
    text = (ROOT / "examples" / "scenarios" / "ilink.json5").read_text(encoding="utf-8")
    result = await run_scenario(text)
    assert result.ok, result.failures
    out = [e["text"] for e in result.transcript if e["direction"] == "out"]
    assert out[1:] == ["now?", "once", "limited", "while away"]


async def test_a_send_whose_answer_was_lost_goes_out_once() -> None:
    result = await run_scenario(
        scenario(
            [
                {"login": "default"},
                {"say": {"from": ALICE, "text": "hello"}},
                {"expect": {"to": ALICE, "equals": "hello"}},
                {"fault": {"kind": "send_lost_reply", "account": "default"}},
                {"say": {"from": ALICE, "text": "lost answer"}},
                {"advance": 30},
                {"expect": {"to": ALICE, "equals": "lost answer"}},
                {"expectNone": {"to": ALICE}},
            ]
        )
    )
    assert result.ok, result.failures


async def test_a_group_message_never_reaches_an_ilink_bot() -> None:
    text = json5.dumps(
        {
            "config": {
                "channels": {"wechat": {"puppet": "ilink", "dmPolicy": "open", "allowFrom": ["*"]}}
            },
            "world": {
                "contacts": [{"id": ALICE}],
                "rooms": [{"id": "r1@chatroom", "members": [ALICE]}],
            },
            "steps": [
                {"login": "default"},
                {"say": {"from": ALICE, "room": "r1@chatroom", "text": "hi all", "mention": True}},
                {"expectNone": {"room": "r1@chatroom"}},
            ],
        }
    )
    result = await run_scenario(text)
    assert result.ok, result.failures


async def test_the_pytest_plugin_runs_an_ilink_gateway(wechat: WeChatHarness) -> None:
    await wechat.gateway(echo, puppet="ilink", dmPolicy="open", allowFrom=["*"])
    world = wechat.world
    assert world.accounts["default"].transport == "ilink"
    await world.say(ALICE, "through iLink", account="default")
    assert world.texts(to=ALICE) == ["through iLink"]
