"""The pairing CLI works on the store of a running gateway: no restart needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from simulator import SimulatedWeChat
from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.agent import AgentTurn
from wechat_sdk.cli import cli
from wechat_sdk.stores.sqlite import SqliteStore


@pytest.fixture
def wechat_world() -> SimulatedWeChat:
    # the CLI reads the wall clock: start the virtual clock at real time so that the
    # gateway's pairing requests are live for it
    world = SimulatedWeChat(seed=0, start=time.time())
    world.add_account("default")
    return world


async def echo(turn: AgentTurn) -> str:
    return f"echo {turn.text}"


def wechat_sdk(*args: str | Path, home: Path) -> subprocess.CompletedProcess[str]:
    """``wechat-sdk ARGS`` as a user runs it: a process of its own, ``home`` its HOME (the
    default config and state directory are there), no config named by the environment."""
    env = {**os.environ, "HOME": str(home), "NO_COLOR": "1"}
    env.pop("WECHAT_SDK_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "wechat_sdk", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def said(result: subprocess.CompletedProcess[str]) -> str:
    """What a command printed, as one line (however the console wrapped it)."""
    return " ".join((result.stdout + result.stderr).split())


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


async def test_the_command_in_the_pairing_reply_says_where_it_looked_when_the_code_is_not_there(
    wechat: WeChatHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway runs with a config whose stateDir is not the default; the pairing reply
    tells the owner to run ``wechat-sdk pairing approve CODE``, which (without --config)
    looks in the default state directory: its error names the directory it looked in and
    how to point it at the gateway's (--config)."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("WECHAT_SDK_CONFIG", raising=False)
    config = tmp_path / "rehearsal.json5"
    config.write_text(f'{{channels: {{wechat: {{stateDir: "{wechat.state_dir}"}}}}}}')
    await wechat.gateway(echo)
    await wechat.world.say("wxid_stranger", "hello")
    (reply,) = wechat.world.texts(to="wxid_stranger")
    command = next(line for line in reply.splitlines() if line.startswith("wechat-sdk pairing"))
    assert command.split()[:3] == ["wechat-sdk", "pairing", "approve"]  # (as the reply says)

    as_told = CliRunner().invoke(cli, command.split()[1:])
    assert as_told.exit_code == 1
    said = " ".join(as_told.output.split())  # (as one line, however the console wrapped it)
    default_dir = home / ".clawdbot" / "wechat"
    assert f"no pairing store in the state directory {default_dir}" in said
    assert not default_dir.exists()
    assert f"no config at {home / '.clawdbot' / 'config.json5'}" in said
    assert "--config" in said

    pointed = CliRunner().invoke(cli, [*command.split()[1:], "--config", str(config)])
    assert pointed.exit_code == 0, pointed.output
    assert "approved wxid_stranger on account default" in pointed.output


@pytest.mark.parametrize("how", ["state-dir", "config-without-state-dir", "config", "redis"])
def test_a_code_not_found_names_the_store_looked_in(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("WECHAT_SDK_CONFIG", raising=False)
    config = tmp_path / "bot.json5"
    state = tmp_path / "state"
    args = ["pairing", "deny", "ABCD2345"]
    for directory in (state, home / ".clawdbot" / "wechat"):  # (a store with no such code)
        SqliteStore.in_state_dir(directory).close()
    if how == "state-dir":
        args += ["--state-dir", str(state)]
        expected = f"looked in the state directory {state} (--state-dir)"
    elif how == "config-without-state-dir":
        config.write_text("{channels: {wechat: {}}}")
        args += ["--config", str(config)]
        default = home / ".clawdbot" / "wechat"
        expected = f"the state directory {default} (the default: {config} sets no stateDir)"
    elif how == "config":
        config.write_text(f'{{channels: {{wechat: {{stateDir: "{state}"}}}}}}')
        args += ["--config", str(config)]
        expected = f"looked in the state directory {state} (stateDir of {config})"
    else:
        url = request.getfixturevalue("redis_url")
        namespace = request.getfixturevalue("redis_namespace")
        config.write_text(
            f'{{channels: {{wechat: {{store: {{kind: "redis", url: "{url}", '
            f'namespace: "{namespace}"}}}}}}}}'
        )
        args += ["--config", str(config)]
        origin = url.rsplit("/", 1)[0]  # (its origin: a password in it is never shown)
        expected = f"looked in the Redis store at {origin} (namespace {namespace}) of {config}"
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert 'no pending pairing request with code "ABCD2345"' in said
    assert expected in said
    assert "name it with --config PATH" in said


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["list", "--json"],
        ["approve", "ABCD2345"],
        ["deny", "ABCD2345"],
        ["revoke", "wxid_kim"],
    ],
)
def test_a_pairing_command_where_no_store_is_makes_none_and_says_so(
    command: list[str], tmp_path: Path
) -> None:
    # each made an empty store where it looked (a mistyped --state-dir got a new
    # directory and database) and answered as if that were the gateway's
    state = tmp_path / "not-the-gateways"
    result = wechat_sdk("pairing", *command, "--state-dir", state, home=tmp_path / "home")
    assert not state.exists()
    assert not (tmp_path / "home").exists()
    assert (
        f"no pairing store in the state directory {state} (--state-dir); if the gateway "
        "runs with another config, name it with --config PATH (or its state directory "
        "with --state-dir DIR)"
    ) in said(result)
    if command[0] == "list":  # nothing pending here, and where it looked
        assert result.returncode == 0, said(result)
        if "--json" in command:
            assert json.loads(result.stdout) == []
    else:
        assert result.returncode == 1, said(result)
        assert not any(w in said(result) for w in ("approved ", "denied ", "revoked "))


def test_the_default_state_directory_gets_no_store_from_a_pairing_command(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    (home / ".clawdbot").mkdir(parents=True)
    result = wechat_sdk("pairing", "approve", "ABCD2345", home=home)
    assert result.returncode == 1
    assert list((home / ".clawdbot").iterdir()) == []
    default = home / ".clawdbot" / "wechat"
    config = home / ".clawdbot" / "config.json5"
    assert (
        f"no pairing store in the state directory {default} (the default: no config at "
        f"{config}); if the gateway runs with another config, name it with --config PATH"
    ) in said(result)


def test_revoke_withdraws_an_approval_from_the_command_line(tmp_path: Path) -> None:
    """``pairing revoke`` is what ``gateway.pairing.revoke`` is: the sender written as in
    allowFrom, the account as --account takes it; a sender not approved is an error."""
    state, home = tmp_path / "state", tmp_path / "home"
    with SqliteStore.in_state_dir(state) as store:
        store.pairing.add_approved("default", "wxid_kim", time.time())
        store.pairing.add_approved("work", "wxid_kim", time.time())

    revoked = wechat_sdk("pairing", "revoke", " WeChat:wxid_kim ", "--state-dir", state, home=home)
    assert revoked.returncode == 0, said(revoked)
    assert "revoked wxid_kim on account default" in said(revoked)
    with SqliteStore.in_state_dir(state) as store:
        assert not store.pairing.is_approved("default", "wxid_kim")
        assert store.pairing.is_approved("work", "wxid_kim")  # another account's approval

    again = wechat_sdk("pairing", "revoke", "wxid_kim", "--state-dir", state, home=home)
    assert again.returncode == 1
    assert "wxid_kim is not an approved sender on account default" in said(again)

    work = ["--account", " Work ", "--state-dir", state]
    assert wechat_sdk("pairing", "revoke", "wx:wxid_kim", *work, home=home).returncode == 0
    with SqliteStore.in_state_dir(state) as store:
        assert not store.pairing.is_approved("work", "wxid_kim")

    nobody = wechat_sdk("pairing", "revoke", "*", "--state-dir", state, home=home)
    assert nobody.returncode == 1
    assert "expected one sender's WeChat id" in said(nobody)


def test_revoke_on_an_account_sharing_a_list_works_on_that_list(tmp_path: Path) -> None:
    config = tmp_path / "config.json5"
    config.write_text(
        json.dumps(
            {
                "channels": {
                    "wechat": {
                        "stateDir": str(tmp_path / "state"),
                        "defaultAccountId": "groups",
                        "accounts": {"groups": {}, "dm": {"pairingAccount": "groups"}},
                    }
                }
            }
        )
    )
    with SqliteStore.in_state_dir(tmp_path / "state") as store:
        store.pairing.add_approved("groups", "wxid_kim", time.time())
    home = tmp_path / "home"
    typo = wechat_sdk(
        "pairing", "revoke", "wxid_kim", "--account", "gruops", "--config", config, home=home
    )
    assert typo.returncode == 2
    assert "no account 'gruops' in the config (accounts: dm, groups)" in said(typo)

    result = wechat_sdk(
        "pairing", "revoke", "wxid_kim", "--account", "dm", "--config", config, home=home
    )
    assert result.returncode == 0, said(result)
    assert "revoked wxid_kim on account groups" in said(result)
    with SqliteStore.in_state_dir(tmp_path / "state") as store:
        assert not store.pairing.is_approved("groups", "wxid_kim")
