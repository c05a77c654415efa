"""A program names an account as a person does on the command line or over HTTP
(``config.asked_account_id``: ``" Work "`` is the account ``work``), and an error it gets
names what it passed, not a CLI option."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator import SimulatedWeChat
from wechat_sdk import AgentTurn
from wechat_sdk.config import ConfigError, parse_config
from wechat_sdk.gateway import Gateway
from wechat_sdk.gateway.gateway import UnknownAccounts

CONFIG = """{channels: {wechat: {
    dmPolicy: "pairing", pacing: false, accounts: {default: {}, Work: {}},
}}}"""


async def agent(turn: AgentTurn) -> str:
    return f"{turn.account_id}: {turn.text}"


def test_only_accounts_naming_no_account_names_only_accounts(tmp_path: Path) -> None:
    # it said "--accounts names nope", an option a program calling Gateway never passed
    world = SimulatedWeChat(seed=1)
    with pytest.raises(UnknownAccounts) as error:
        world.gateway(CONFIG, agent, state_dir=tmp_path, only_accounts=["work", "nope"])
    assert str(error.value) == (
        "only_accounts names nope, not an account of the config (its accounts: default, work)"
    )
    assert error.value.unknown == ["nope"]
    assert error.value.configured == ["default", "work"]


async def test_only_accounts_takes_an_id_as_the_cli_does(tmp_path: Path) -> None:
    # " Work " was "not an account of the config", where --accounts " Work " runs it
    world = SimulatedWeChat(seed=2)
    world.add_account("work")
    gateway = world.gateway(CONFIG, agent, state_dir=tmp_path, only_accounts=[" Work "])
    assert gateway.only_accounts == ["work"]
    async with gateway:
        assert list(gateway.runners) == ["work"]
    with pytest.raises(ValueError, match="use 1-64 characters from a-z, 0-9, _ and -"):
        world.gateway(CONFIG, agent, state_dir=tmp_path, only_accounts=["my work"])


async def test_send_and_pairing_take_an_account_as_the_cli_does(tmp_path: Path) -> None:
    # send(account="Work ") raised KeyError "account 'Work ' is not running (running:
    # default, work)"; pairing.list("WORK") was empty with a request pending on work
    world = SimulatedWeChat(seed=3)
    world.add_account("work")
    stranger = world.add_contact("wxid_stranger", "Stranger").id
    gateway: Gateway = world.gateway(CONFIG, agent, state_dir=tmp_path)
    async with gateway:
        await world.login("default")
        await world.login("work")
        await world.drive(gateway.send("wxid_owner", "from work", account="Work "))
        assert world.texts(to="wxid_owner", account="work") == ["from work"]

        await world.say(stranger, "hello", account="work")
        (request,) = gateway.pairing.list("WORK")
        approved = await gateway.pairing.approve(request.code, account=" work", notify=True)
        assert approved.account_id == "work"
        assert [a.sender_id for a in gateway.pairing.approved("Work")] == [stranger]
        await world.run_until_idle()
        await gateway.wait_idle()
        with pytest.raises(ValueError, match="use 1-64 characters from a-z, 0-9, _ and -"):
            await gateway.send("wxid_owner", "hi", account="my work")
        with pytest.raises(KeyError, match="'nope' is not running"):
            await gateway.send("wxid_owner", "hi", account="Nope")
    assert world.texts(to=stranger, account="work")[-1].startswith("You're approved")


async def test_a_restart_that_would_run_none_of_the_named_accounts_is_refused(
    tmp_path: Path,
) -> None:
    """A gateway started with --accounts work, given a config that disables work (or no
    longer has it): the restart stopped work and ran nothing, a gateway "running" with no
    account. Refused as `gateway run --accounts work` refuses it; work goes on."""
    world = SimulatedWeChat(seed=4)
    world.add_account("work")
    gateway = world.gateway(CONFIG, agent, state_dir=tmp_path, only_accounts=["work"])
    async with gateway:
        await world.login("work")
        for config, where, said in (
            (
                "{channels: {wechat: {accounts: {default: {}, work: {enabled: false}}}}}",
                "channels.wechat.accounts.work.enabled",
                "this config disables work",
            ),
            (
                "{channels: {wechat: {accounts: {default: {}}}}}",
                "channels.wechat.accounts",
                "work is no account of this config",
            ),
        ):
            with pytest.raises(ConfigError) as error:
                await gateway.reload(parse_config(config))
            (problem,) = error.value.problems
            assert problem.path == where
            assert "the gateway runs only work (--accounts, only_accounts)" in problem.message
            assert said in problem.message
            assert gateway.runs() == {"work"}
            assert [s.lifecycle for s in gateway.status() if s.account == "work"] == ["ready"]
        await gateway.reload(parse_config(CONFIG.replace('"pairing"', '"open"')))
        assert gateway.runs() == {"work"}
