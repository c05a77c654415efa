"""The claims of docs/privacy.md: file modes in the state directory, and what the logs hold."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.agent import AgentTurn
from wechat_sdk.cli import cli

SECRET_TEXT = "my-secret-message-text-8f3a"
TOKEN = "puppet-token-5b1d77a0"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def agent(turn: AgentTurn) -> str:
    return f"reply to {turn.text}"


async def test_state_directory_files_are_private(wechat: WeChatHarness) -> None:
    await wechat.gateway(agent, dmPolicy="open", allowFrom=["*"])
    world = wechat.world
    await world.say("wxid_alice", "hi", media={"kind": "image", "name": "../../a.png", "size": 400})
    state = wechat.state_dir
    assert mode(state) == 0o700
    db = state / "wechat-sdk.sqlite3"
    assert mode(db) == 0o600
    for extra in (state / "wechat-sdk.sqlite3-wal", state / "wechat-sdk.sqlite3-shm"):
        if extra.exists():
            assert mode(extra) & 0o077 == 0, extra.name
    inbound = state / "media" / "inbound" / "default"
    assert mode(inbound.parent) == 0o700 and mode(inbound) == 0o700
    (saved,) = list(inbound.iterdir())
    assert mode(saved) == 0o600
    assert saved.name.startswith("a-") and saved.suffix == ".png"
    qr = state / "qr-default.png"
    assert mode(qr) == 0o600


async def test_logs_never_hold_message_text_or_the_token(
    wechat: WeChatHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wechat_sdk")
    await wechat.gateway(
        agent,
        dmPolicy="pairing",
        allowFrom=["wxid_owner"],
        puppetOptions={"token": TOKEN},
    )
    world = wechat.world
    await world.say("wxid_owner", SECRET_TEXT)  # answered
    await world.say("wxid_stranger", SECRET_TEXT)  # pairing code, dropped
    room = world.add_room(members=["wxid_owner"])
    await world.say("wxid_owner", SECRET_TEXT, room=room.id)  # no mention: dropped
    assert world.texts(to="wxid_owner") == [f"reply to {SECRET_TEXT}"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "pairing_required" in logged and "no_mention" in logged  # the drops were logged
    assert SECRET_TEXT not in logged
    assert TOKEN not in logged


def test_config_check_masks_the_token(tmp_path: Path) -> None:
    config = tmp_path / "config.json5"
    config.write_text(
        '{ channels: { wechat: { puppet: "wechaty-puppet-service",'
        f' puppetOptions: {{ token: "{TOKEN}" }} }} }} }}',
        encoding="utf-8",
    )
    for args in (["config", "check", "--config", str(config)], ["config", "check", "--json"]):
        if "--json" in args:
            args += ["--config", str(config)]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert TOKEN not in result.output
        assert "***" in result.output
