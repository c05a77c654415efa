"""Account ids on the command line are the config's: lowercased (``Work`` is the account
``work``), and an option that names no account is a usage error, not a gateway that runs
nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from wechat_sdk.cli import cli
from wechat_sdk.gateway import service


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What `gateway run` hands to serve (nothing runs)."""
    calls: list[Any] = []

    async def serve(*args: Any, only_accounts: list[str] | None = None, **kw: Any) -> int:
        calls.append(only_accounts)
        return 0

    monkeypatch.setattr(service, "serve", serve)
    return calls


def run(tmp_path: Path, accounts: str) -> Any:
    config = tmp_path / "config.json5"
    config.write_text('{channels: {wechat: {puppet: "simulator", accounts: {Work: {}, home: {}}}}}')
    state = str(tmp_path / "state")
    args = ["gateway", "run", "--config", str(config), "--state-dir", state, "--accounts", accounts]
    return CliRunner().invoke(cli, args)


def test_gateway_run_accounts_are_taken_in_any_letter_case(
    tmp_path: Path, served: list[Any]
) -> None:
    # "--accounts WORK" was refused: "names WORK, not an account of the config"
    result = run(tmp_path, "WORK, Home,")
    assert result.exit_code == 0, result.output
    assert served == [["work", "home"]]


@pytest.mark.parametrize("accounts", ["", " , "])
def test_gateway_run_accounts_naming_no_account_is_a_usage_error(
    tmp_path: Path, served: list[Any], accounts: str
) -> None:
    # an empty list ran a gateway with no account at all ("gateway running: 0 account(s)")
    result = run(tmp_path, accounts)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--accounts'" in result.output
    assert "names no account" in result.output
    assert served == []


def test_gateway_run_accounts_with_an_impossible_id_is_a_usage_error(
    tmp_path: Path, served: list[Any]
) -> None:
    result = run(tmp_path, "work,my home")
    assert result.exit_code == 2, result.output
    assert "use 1-64 characters from a-z, 0-9, _ and -" in result.output
    assert served == []


def test_channels_capabilities_takes_its_account_as_every_other_command(tmp_path: Path) -> None:
    # " Work " was refused as no possible id, where every other --account takes it
    config = tmp_path / "config.json5"
    config.write_text('{channels: {wechat: {puppet: "simulator", accounts: {Work: {}, home: {}}}}}')
    args = ["channels", "capabilities", "--json", "--config", str(config), "--account", " Work "]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output


def test_gateway_run_accounts_naming_an_unknown_account_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it exited 1, as a failed run, where every other wrong option exits 2
    from wechat_sdk.gateway import Gateway

    async def start(self: Gateway) -> None:
        raise AssertionError("a gateway started with an unknown account in --accounts")

    monkeypatch.setattr(Gateway, "start", start)
    result = run(tmp_path, "work,Nope")
    assert result.exit_code == 2, result.output
    assert "Usage: " in result.output
    assert "--accounts names nope, not an account of the config" in result.output
    assert "(its accounts: work, home)" in result.output


def test_gateway_run_accounts_naming_a_disabled_account_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it ran a gateway that ran nothing, without a word ("gateway running: 0 account(s)")
    from wechat_sdk.gateway import Gateway

    async def start(self: Gateway) -> None:
        raise AssertionError("a gateway started with a disabled account in --accounts")

    monkeypatch.setattr(Gateway, "start", start)
    config = tmp_path / "config.json5"
    config.write_text(
        '{channels: {wechat: {puppet: "simulator", accounts: {work: {}, off: {enabled: false}}}}}'
    )
    args = ["gateway", "run", "--config", str(config), "--state-dir", str(tmp_path / "state")]
    result = CliRunner().invoke(cli, [*args, "--accounts", "work,off"])
    assert result.exit_code == 2, result.output
    assert "--accounts names off, disabled in the config (enabled: false)" in result.output
    assert "enable it there, or leave it out of --accounts" in result.output


@pytest.mark.parametrize("account", ["", "a b", "bot/1"])
def test_simulator_serve_refuses_an_account_id_its_urls_cannot_carry(account: str) -> None:
    # (it served them, and printed curl lines with /sim/accounts/a b/login that did not work)
    result = CliRunner().invoke(cli, ["simulator", "serve", "--port", "0", "--account", account])
    assert result.exit_code == 2
    assert "Invalid value for '--account'" in result.output
