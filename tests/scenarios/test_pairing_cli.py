"""The pairing CLI works on the store of a running gateway: no restart needed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from simulator import SimulatedWeChat
from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.agent import AgentTurn
from wechat_sdk.cli import cli


@pytest.fixture
def wechat_world() -> SimulatedWeChat:
    # the CLI reads the wall clock: start the virtual clock at real time so that the
    # gateway's pairing requests are live for it
    world = SimulatedWeChat(seed=0, start=time.time())
    world.add_account("default")
    return world


async def echo(turn: AgentTurn) -> str:
    return f"echo {turn.text}"


async def test_cli_list_and_approve_while_gateway_runs(wechat: WeChatHarness) -> None:
    await wechat.gateway(echo)
    await wechat.world.say("wxid_stranger", "hello")
    state = str(wechat.state_dir)
    listed = CliRunner().invoke(cli, ["pairing", "list", "--json", "--state-dir", state])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [r["senderId"] for r in rows] == ["wxid_stranger"]
    code = rows[0]["code"]

    approved = CliRunner().invoke(cli, ["pairing", "approve", code.lower(), "--state-dir", state])
    assert approved.exit_code == 0, approved.output
    assert "approved wxid_stranger on account default" in approved.output

    await wechat.world.say("wxid_stranger", "now?")
    assert wechat.world.texts(to="wxid_stranger")[-1] == "echo now?"


async def test_cli_deny_and_unknown_code(wechat: WeChatHarness) -> None:
    await wechat.gateway(echo)
    await wechat.world.say("wxid_stranger", "hello")
    state = str(wechat.state_dir)
    code = json.loads(
        CliRunner().invoke(cli, ["pairing", "list", "--json", "--state-dir", state]).output
    )[0]["code"]
    denied = CliRunner().invoke(cli, ["pairing", "deny", code, "--state-dir", state])
    assert denied.exit_code == 0 and "denied wxid_stranger" in denied.output
    again = CliRunner().invoke(cli, ["pairing", "approve", code, "--state-dir", state])
    assert again.exit_code == 1
    assert "wechat-sdk pairing list" in again.output
    await wechat.world.say("wxid_stranger", "still there?")
    assert not any(t.startswith("echo") for t in wechat.world.texts(to="wxid_stranger"))


async def test_notify_without_a_running_gateway_says_so(wechat: WeChatHarness) -> None:
    await wechat.gateway(echo)
    await wechat.world.say("wxid_stranger", "hello")
    state = str(wechat.state_dir)
    code = json.loads(
        CliRunner().invoke(cli, ["pairing", "list", "--json", "--state-dir", state]).output
    )[0]["code"]
    result = CliRunner().invoke(cli, ["pairing", "approve", code, "--notify", "--state-dir", state])
    assert result.exit_code == 0
    assert "not notified" in result.output and "no gateway is running" in result.output


async def test_account_is_taken_as_written_in_any_letter_case(wechat: WeChatHarness) -> None:
    # account ids are lowercased ("Work" is the account "work"): --account DEFAULT listed
    # nothing and refused the code as "belongs to account default, not DEFAULT"
    await wechat.gateway(echo)
    await wechat.world.say("wxid_stranger", "hello")
    state = ["--state-dir", str(wechat.state_dir)]
    listed = CliRunner().invoke(cli, ["pairing", "list", "--json", "--account", "DEFAULT", *state])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    approve = ["pairing", "approve", row["code"], "--account", " Default ", *state]
    approved = CliRunner().invoke(cli, approve)
    assert approved.exit_code == 0, approved.output
    assert "approved wxid_stranger on account default" in approved.output

    bad = CliRunner().invoke(cli, ["pairing", "list", "--account", "my work", *state])
    assert bad.exit_code == 2
    assert "Invalid value for '--account'" in bad.output
    assert "use 1-64 characters from a-z, 0-9, _ and -" in bad.output


async def test_list_for_an_account_the_config_lacks_says_so(
    wechat: WeChatHarness, tmp_path: Path
) -> None:
    # a mistyped --account listed "no pending pairing requests", as if all were well
    await wechat.gateway(echo)
    await wechat.world.say("wxid_stranger", "hello")
    config = tmp_path / "config.json5"
    config.write_text("{channels: {wechat: {accounts: {default: {}, work: {}}}}}")
    where = ["--state-dir", str(wechat.state_dir), "--config", str(config)]
    for args in (["--account", "wrok"], ["--account", "wrok", "--json"]):
        bad = CliRunner().invoke(cli, ["pairing", "list", *args, *where])
        assert bad.exit_code == 2, bad.output
        assert "no account 'wrok' in the config (accounts: default, work)" in bad.output
    listed = CliRunner().invoke(cli, ["pairing", "list", "--account", "work", *where])
    assert listed.exit_code == 0 and "no pending pairing requests" in listed.output
    listed = CliRunner().invoke(cli, ["pairing", "list", "--account", "default", *where])
    assert listed.exit_code == 0 and "wxid_stranger" in listed.output
