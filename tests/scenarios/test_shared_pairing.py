"""Accounts sharing one pairing list (``pairingAccount``): a stranger approved once may
talk to every account that shares it, and the code they get says where to approve it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import json5
import pytest
from click.testing import CliRunner

from simulator import SimulatedWeChat
from wechat_sdk import AgentTurn, ConfigError, parse_config
from wechat_sdk.cli import cli
from wechat_sdk.clock import RealClock
from wechat_sdk.gateway import Gateway
from wechat_sdk.gateway.control import ControlServer
from wechat_sdk.gateway.service import pairing_command
from wechat_sdk.pairing.service import Pairing
from wechat_sdk.stores import PairingRequest
from wechat_sdk.stores.sqlite import SqliteStore

CONFIG = """{ channels: { wechat: {
    pacing: false,
    defaultAccountId: "groups",
    accounts: {
        groups: {},
        dm: { pairingAccount: "groups" },
        alone: {},
    },
} } }"""


def world_of(*accounts: str, now: bool = True) -> tuple[SimulatedWeChat, str]:
    """A world with these bot accounts and a stranger (its id), its clock starting now
    (the CLI meets the gateway's rows on the real clock) unless ``now`` is False."""
    world = SimulatedWeChat(seed=8, start=time.time()) if now else SimulatedWeChat(seed=8)
    for account in accounts:
        world.add_account(account)
    return world, world.add_contact("wxid_stranger", "Stranger").id


async def agent(turn: AgentTurn) -> str:
    return f"{turn.account_id}: {turn.text}"


async def test_one_approval_lets_a_stranger_talk_to_every_account_sharing_the_list(
    tmp_path: Path,
) -> None:
    world, stranger = world_of("groups", "dm", "alone", now=False)
    gateway = world.gateway(CONFIG, agent, state_dir=tmp_path)
    async with gateway:
        for account in ("groups", "dm", "alone"):
            await world.login(account)
        await world.say(stranger, "hello", account="dm")
        (code_text,) = world.texts(to=stranger)
        (request,) = gateway.pairing.list()
        assert request.account_id == "groups"  # kept in the shared list
        assert f"wechat-sdk pairing approve {request.code}" in code_text
        assert "--account" not in code_text  # groups is the default account

        await gateway.pairing.approve(request.code)
        await world.say(stranger, "again", account="dm")
        await world.say(stranger, "and here", account="groups")
        await world.say(stranger, "not here", account="alone")  # its own list: a code
        await world.run_until_idle()
        await gateway.wait_idle()
    texts = world.texts(to=stranger)
    assert texts[1:3] == ["dm: again", "groups: and here"]
    assert "pairing approve" in texts[3] and "--account alone" in texts[3]


@pytest.mark.parametrize(
    ("accounts", "message"),
    [
        ('{ a: { pairingAccount: "nobody" } }', "names no account: 'nobody'"),
        (
            '{ a: { pairingAccount: "b" }, b: { pairingAccount: "c" }, c: {} }',
            "shares the pairing list of 'c': name 'c' here",
        ),
    ],
)
def test_a_pairing_account_that_cannot_be_used_is_a_config_error(
    accounts: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(f"{{ channels: {{ wechat: {{ accounts: {accounts} }} }} }}")
    assert "channels.wechat.accounts.a.pairingAccount" in str(error.value)
    assert message in str(error.value)


async def test_a_scenario_approves_on_the_list_the_named_account_shares() -> None:
    # `approve: {from, account: "dm"}` looked in dm's own list, which is empty when dm
    # shares groups' ("no pending pairing request from wxid_stranger")
    from simulator.scenario import run_scenario

    config = json5.loads(CONFIG)
    stranger = "wxid_stranger"
    steps = [
        {"login": "groups"},
        {"login": "dm"},
        {"say": {"from": stranger, "text": "hello", "account": "dm"}},
        {"expect": {"to": stranger, "account": "dm", "contains": "pairing approve"}},
        {"approve": {"from": stranger, "account": "dm"}},
        {"say": {"from": stranger, "text": "again", "account": "dm"}},
        {"expect": {"to": stranger, "account": "dm", "equals": "again"}},
    ]
    text = json5.dumps(
        {"config": config, "world": {"contacts": [{"id": stranger}]}, "steps": steps}
    )
    result = await run_scenario(text)
    assert result.ok, result.failures


async def test_the_owner_reaches_a_shared_list_through_any_account_sharing_it(
    tmp_path: Path,
) -> None:
    # gateway.pairing looked in dm's own rows, empty when dm shares groups': list("dm")
    # and approved("dm") were empty, and revoke("dm", ...) answered False while the
    # stranger went on talking to dm
    world, stranger = world_of("groups", "dm", "alone")
    gateway = world.gateway(CONFIG, agent, state_dir=tmp_path)
    async with gateway:
        for account in ("groups", "dm", "alone"):
            await world.login(account)
        await world.say(stranger, "hello", account="dm")
        (request,) = gateway.pairing.list("dm")
        assert request.account_id == "groups"
        assert gateway.pairing.list("alone") == []
        config = _config_file(tmp_path)
        listed = CliRunner().invoke(
            cli, ["pairing", "list", "--account", "dm", "--json", "--config", str(config)]
        )
        assert [r["code"] for r in json.loads(listed.output)] == [request.code], listed.output

        approved = await gateway.pairing.approve(request.code, account="dm")
        assert approved.account_id == "groups"
        assert [a.sender_id for a in gateway.pairing.approved("dm")] == [stranger]
        await world.say(stranger, "in", account="dm")

        assert gateway.pairing.revoke("dm", stranger) is True
        assert gateway.pairing.approved("groups") == []
        await world.say(stranger, "still in?", account="dm")
        await world.run_until_idle()
        await gateway.wait_idle()
    texts = world.texts(to=stranger)
    assert texts[1] == "dm: in"
    assert len(texts) == 3 and "pairing approve" in texts[2]  # a new code, no answer


def _config_file(state_dir: Path) -> Path:
    """CONFIG in a file, its stateDir ``state_dir``."""
    config = state_dir / "config.json5"
    config.write_text(
        CONFIG.replace("pacing: false,", f"pacing: false, stateDir: {json.dumps(str(state_dir))},")
    )
    return config


def test_the_cli_denies_on_the_list_an_account_shares(tmp_path: Path) -> None:
    config = _config_file(tmp_path)
    store = SqliteStore.in_state_dir(tmp_path)
    try:
        Pairing(store.pairing, RealClock()).challenge("groups", "wxid_stranger", "Stranger")
        (request,) = store.pairing.list_requests("groups")
    finally:
        store.close()
    denied = CliRunner().invoke(
        cli, ["pairing", "deny", request.code, "--account", "dm", "--config", str(config)]
    )
    assert denied.exit_code == 0, denied.output
    assert "denied wxid_stranger on account groups" in denied.output


def test_two_accounts_naming_each_other_are_told_to_let_one_keep_the_list() -> None:
    # each was told to name itself ("shares the pairing list of 'a': name 'a' here", and
    # the reverse): doing both shares nothing
    with pytest.raises(ConfigError) as error:
        parse_config(
            '{ channels: { wechat: { accounts: { a: { pairingAccount: "b" }, '
            'b: { pairingAccount: "a" } } } } }'
        )
    (problem,) = error.value.problems
    assert problem.path == "channels.wechat.accounts.a.pairingAccount"
    assert problem.message == (
        "accounts 'a' and 'b' name each other's pairing list: one of them keeps its own "
        "(remove pairingAccount from it, and the other shares that list)"
    )


async def test_a_list_shared_from_a_disabled_account_keeps_working(tmp_path: Path) -> None:
    """An account sharing the pairing list of a disabled account (stopped for a while, say)
    goes on using that list: the stranger's code is kept there and names it, the owner
    approves it through either account, and the approval lets the stranger in; ``notify``
    tells them through the account they wrote to (it said nothing: it looked for the
    account that owns the list, which does not run)."""
    config = """{ channels: { wechat: {
        pacing: false,
        defaultAccountId: "dm",
        accounts: { groups: { enabled: false }, dm: { pairingAccount: "groups" } },
    } } }"""
    parse_config(config)  # (no config error)
    world, stranger = world_of("groups", "dm")
    gateway = world.gateway(config, agent, state_dir=tmp_path)
    async with gateway:
        assert list(gateway.runners) == ["dm"]
        await world.login("dm")
        await world.say(stranger, "hello", account="dm")
        (code_text,) = world.texts(to=stranger)
        (request,) = gateway.pairing.list("dm")
        assert request.account_id == "groups"
        assert f"wechat-sdk pairing approve {request.code} --account groups" in code_text

        approved = await gateway.pairing.approve(request.code, account="dm", notify=True)
        assert approved.account_id == "groups"
        await world.say(stranger, "again", account="dm")
        await world.run_until_idle()
        await gateway.wait_idle()
    assert world.texts(to=stranger, account="dm")[1:] == [
        "You're approved: WeChat assistant will answer your messages from now on.",
        "dm: again",
    ]


@contextlib.asynccontextmanager
async def controlled(gateway: Gateway) -> AsyncIterator[None]:
    """The gateway's control socket, answering the pairing commands as ``gateway run``
    does (the CLI's ``approve`` tells it of the approval, and asks it to ``--notify``)."""

    async def handle(request: dict[str, Any]) -> dict[str, Any]:
        answer = await pairing_command(gateway, request)
        return answer if answer is not None else {"ok": False, "error": "not here"}

    control = ControlServer(gateway.state_dir, handle)
    await control.start()
    try:
        yield
    finally:
        await control.stop()


def short_state_dir() -> Path:
    """A state directory whose control socket's path is short enough (pytest's tmp_path
    may be too long for a Unix socket)."""
    return Path(tempfile.mkdtemp(prefix="pair"))


async def approve_in_cli(config: Path, code: str) -> str:
    """``wechat-sdk pairing approve CODE --notify`` (beside the running gateway): what it
    said, as one line."""
    args = ["pairing", "approve", code, "--notify", "--config", str(config)]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


async def test_approve_notify_tells_the_sender_through_the_account_they_wrote_to() -> None:
    """The stranger wrote to dm, whose codes are kept in groups' list: ``approve --notify``
    tells them through dm, the account they talk to (it asked groups, which does not run
    here, and on iLink has no reply window with them: "not notified")."""
    state = short_state_dir()
    try:
        world, stranger = world_of("groups", "dm")
        config = _config_file(state)
        gateway = world.gateway(CONFIG, agent, state_dir=state, only_accounts=["dm"])
        async with gateway, controlled(gateway):
            await world.login("dm")
            await world.say(stranger, "hello", account="dm")
            (request,) = gateway.pairing.list("dm")
            said = await approve_in_cli(config, request.code)
            assert "the sender was told" in said and "not notified" not in said
            await world.run_until_idle()
        assert world.texts(to=stranger, account="dm")[1:] == [
            "You're approved: WeChat assistant will answer your messages from now on."
        ]
        assert world.texts(account="groups") == []
    finally:
        shutil.rmtree(state)


async def test_approve_notify_says_when_the_account_the_sender_wrote_to_is_not_running() -> None:
    """The stranger wrote to dm; the gateway now runs groups only (the list's owner):
    ``approve --notify`` approves, and says clearly that dm, the account that can tell
    them, is not running (it told them through groups, an account they never wrote to)."""
    state = short_state_dir()
    try:
        world, stranger = world_of("groups", "dm")
        config = _config_file(state)
        first = world.gateway(CONFIG, agent, state_dir=state)
        async with first:
            await world.login("dm")
            await world.say(stranger, "hello", account="dm")
            (request,) = first.pairing.list("dm")
        gateway = world.gateway(CONFIG, agent, state_dir=state, only_accounts=["groups"])
        async with gateway, controlled(gateway):
            await world.login("groups")
            said = await approve_in_cli(config, request.code)
            await world.run_until_idle()
            assert [a.sender_id for a in gateway.pairing.approved("dm")] == [stranger]
        assert f"approved {stranger} on account groups" in said
        assert (
            "not notified: account 'dm', the one wxid_stranger wrote to, is not running "
            "(running: groups): only it can tell them"
        ) in said, said
        assert world.texts(account="groups") == []
    finally:
        shutil.rmtree(state)


async def test_a_request_stored_before_the_account_written_to_was_kept_notifies_as_before(
    tmp_path: Path,
) -> None:
    """A request an earlier build stored records no account the sender wrote to:
    ``notify`` tells them through the account whose list keeps it, as it did."""
    world, stranger = world_of("groups", "dm")
    gateway = world.gateway(CONFIG, agent, state_dir=tmp_path)
    async with gateway:
        await world.login("groups")
        await world.login("dm")
        now = world.clock.now()
        old = PairingRequest("ABCD2345", "groups", stranger, "Stranger", now, now + 3600)
        gateway.store.pairing.add_request(old)
        await gateway.pairing.approve("ABCD2345", account="dm", notify=True)
        await world.run_until_idle()
    assert world.texts(to=stranger, account="groups") == [
        "You're approved: WeChat assistant will answer your messages from now on."
    ]
    assert world.texts(account="dm") == []


async def test_python_approve_notify_logs_when_the_account_written_to_is_not_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``gateway.pairing.approve(code, notify=True)`` in Python: the sender wrote to dm,
    which this gateway does not run; they are approved, and the log says they were not
    told, and why (it skipped the note without a word)."""
    world, stranger = world_of("groups", "dm")
    first = world.gateway(CONFIG, agent, state_dir=tmp_path)
    async with first:
        await world.login("dm")
        await world.say(stranger, "hello", account="dm")
        (request,) = first.pairing.list("dm")
    gateway = world.gateway(CONFIG, agent, state_dir=tmp_path, only_accounts=["groups"])
    async with gateway:
        await world.login("groups")
        await gateway.pairing.approve(request.code, notify=True)
        await world.run_until_idle()
        assert [a.sender_id for a in gateway.pairing.approved("dm")] == [stranger]
    (line,) = [r for r in caplog.records if "not notified" in r.getMessage()]
    assert line.levelname == "WARNING"
    assert f"account 'dm', the one {stranger} wrote to, is not running" in line.getMessage()
    assert world.texts(account="groups") == []


async def test_python_approve_notify_on_a_logged_out_account_approves_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The account the stranger wrote to runs but is logged out: the note (a proactive
    send, which never waits for a next login) cannot go; ``approve(notify=True)`` still
    returns the approval, and the log says it was not sent (it raised DeliveryFailed after
    the approval was stored)."""
    world, stranger = world_of("groups", "dm")
    gateway = world.gateway(CONFIG, agent, state_dir=tmp_path)
    async with gateway:
        await world.login("dm")
        await world.say(stranger, "hello", account="dm")
        (request,) = gateway.pairing.list("dm")
        world.fault("logout", account="dm")
        await world.run_until_idle()
        approved = await gateway.pairing.approve(request.code, notify=True)
        assert approved.sender_id == stranger
        assert [a.sender_id for a in gateway.pairing.approved("dm")] == [stranger]
    assert any("not notified" in r.getMessage() for r in caplog.records), caplog.text
