"""Text the user types or the network sends is printed as it is by the CLI: brackets are
not rich markup (``[/]`` crashed with a MarkupError, ``[red]`` vanished)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from wechat_sdk import cli
from wechat_sdk.cli import gateway_commands
from wechat_sdk.clock import RealClock
from wechat_sdk.pairing.service import Pairing
from wechat_sdk.stores.sqlite.store import SqliteStore

SENDER = "wxid_[red]x[/]"
NAME = "Bob [/] [bold]the builder[/bold]"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.cli, list(args))


def no_crash(result: Any) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "MarkupError" not in result.output


def pending_request(state: Path) -> str:
    store = SqliteStore.in_state_dir(state)
    try:
        challenge = Pairing(store.pairing, RealClock()).challenge("default", SENDER, NAME)
        assert challenge.request is not None
        return challenge.request.code
    finally:
        store.close()


def test_approving_a_code_in_brackets_says_there_is_no_such_code(tmp_path: Path) -> None:
    SqliteStore.in_state_dir(tmp_path).close()  # (a store without that code)
    result = invoke("pairing", "approve", "[/]", "--state-dir", str(tmp_path))
    no_crash(result)
    assert result.exit_code == 1
    assert 'no pending pairing request with code "[/]"' in result.output


def test_deny_of_a_code_in_brackets_says_there_is_no_such_code(tmp_path: Path) -> None:
    SqliteStore.in_state_dir(tmp_path).close()  # (a store without that code)
    result = invoke("pairing", "deny", "x[/]", "--state-dir", str(tmp_path))
    no_crash(result)
    assert result.exit_code == 1
    assert 'no pending pairing request with code "X[/]"' in result.output


def test_a_sender_with_brackets_is_listed_and_approved_as_written(tmp_path: Path) -> None:
    code = pending_request(tmp_path)
    listed = invoke("pairing", "list", "--state-dir", str(tmp_path))
    no_crash(listed)
    assert listed.exit_code == 0
    assert "[/]" in listed.output and "[bold]the" in listed.output
    approved = invoke("pairing", "approve", code, "--state-dir", str(tmp_path))
    no_crash(approved)
    assert approved.exit_code == 0
    assert f"approved {SENDER} on account default" in approved.output


def test_a_config_path_with_brackets_is_named_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "[bold]a"
    folder.mkdir()
    config = folder / "config.json5"
    config.write_text("{channels: {wechat: {dmPolicy: 3}}}", encoding="utf-8")
    result = invoke("config", "check", "--config", str(config))
    no_crash(result)
    assert result.exit_code == 1
    assert f"config error in {config}" in result.output


def test_gateway_status_shows_names_with_brackets(monkeypatch: pytest.MonkeyPatch) -> None:
    account = {
        "account": "default",
        "state": "reconnecting: [/] gone",
        "user_name": NAME,
        "user_id": SENDER,
        "last_inbound": None,
        "last_outbound": None,
        "reconnects": 0,
        "pending_pairing": 0,
        "queue_depth": 0,
        "last_error": None,
    }
    monkeypatch.setattr(gateway_commands, "_control", lambda *args: {"accounts": [account]})
    result = invoke("gateway", "status")
    no_crash(result)
    assert result.exit_code == 0
    assert "[/] gone" in result.output
    assert SENDER in result.output
