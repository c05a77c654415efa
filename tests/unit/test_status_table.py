"""`wechat-sdk gateway status` shows one line per account, whatever its last error is."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from wechat_sdk import cli
from wechat_sdk.cli import gateway_commands
from wechat_sdk.cli.gateway_commands import error_cell

STACK = (
    "PuppetError: UNKNOWN: Error: net::ERR_NAME_NOT_RESOLVED at https://wx.qq.com\n"
    + "\n".join(
        f"    at step{i} (/home/you/.clawdbot/wechat/node/npm-2765c6ae6520/node_modules/"
        f"puppeteer/lib/cjs/puppeteer/common/FrameManager.js:{i}:23)"
        for i in range(10)
    )
)


def account(name: str, last_error: str | None, user_id: str | None = None) -> dict[str, Any]:
    return {
        "account": name,
        "state": "reconnecting" if last_error else "ready",
        "user_name": "Bot" if user_id else None,
        "user_id": user_id,
        "last_inbound": None,
        "last_outbound": None,
        "reconnects": 3,
        "pending_pairing": 0,
        "queue_depth": 0,
        "last_error": last_error,
    }


def status_table(monkeypatch: pytest.MonkeyPatch, *accounts: dict[str, Any]) -> list[str]:
    monkeypatch.setattr(gateway_commands, "_control", lambda *args: {"accounts": list(accounts)})
    result = CliRunner().invoke(cli.cli, ["gateway", "status"])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_a_node_stack_takes_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = status_table(
        monkeypatch,
        account("default", STACK),
        account("work", None, "wxid_work"),
        account("shop", "[Errno 111] Connection refused"),
    )
    rows = [line for line in lines if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == ["default", "work", "shop"]
    assert "PuppetError: UNKNOWN: Error: net::ERR_NAME_NOT_RESOLVED" in rows[0]
    assert "FrameManager.js" not in "\n".join(lines)  # the stack stays in the log
    assert "[Errno 111] Connection refused" in rows[2]  # text, not rich markup
    assert len({len(line) for line in lines[1:]}) == 1  # one table, as wide as its rows


@pytest.mark.parametrize(
    ("error", "width", "cell"),
    [
        (None, 40, "-"),
        ("", 40, "-"),
        ("connection lost", 40, "connection lost"),
        ("first line\n  at x\n  at y", 40, "first line …"),
        ("\n\n  spaced    out  \n", 40, "spaced out"),
        ("a" * 50, 40, "a" * 39 + "…"),
        ("a" * 50 + "\nmore", 40, "a" * 39 + "…"),
    ],
)
def test_error_cell(error: str | None, width: int, cell: str) -> None:
    assert error_cell(error, width) == cell


def test_json_keeps_the_whole_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        gateway_commands, "_control", lambda *args: {"accounts": [account("default", STACK)]}
    )
    result = CliRunner().invoke(cli.cli, ["gateway", "status", "--json"])
    assert '"last_error": "PuppetError: UNKNOWN: Error: net::ERR_NAME_NOT_RESOLVED' in result.output
    assert result.output.count("FrameManager.js") == 10
