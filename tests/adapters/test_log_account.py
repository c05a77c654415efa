"""Log lines of the Puppet Service client and of the media saver name their account (the
log format's ``%(account)s``), where they said ``-``."""

from __future__ import annotations

import logging

import pytest
from test_wechaty_client import Script, client_for, server  # noqa: F401 (a fixture)

from simulator import Recorder
from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.adapters.wechaty._proto import puppet_pb2 as pb


def accounts_of(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    records = [r for r in caplog.records if r.name.startswith(logger)]
    assert records, f"nothing logged by {logger}"
    return [getattr(r, "account", "-") for r in records]


async def test_the_service_clients_log_lines_name_the_account(
    server: tuple[Script, str],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    script, endpoint = server
    script.messages["odd"] = pb.MessagePayloadResponse(
        id="odd", talker_id="wxid_a", text="?", type=42
    )
    client = client_for(endpoint, account_id="work")
    await client.start()
    caplog.set_level(logging.WARNING, logger="wechat_sdk.adapters.wechaty")
    try:
        script.push(99, {"x": 1})  # an event of an unknown type: skipped, with a warning
        script.push(2, {"messageId": "odd"})
        async for _event in client.events():
            if caplog.records:
                break
        await client.message("odd")  # a message of an unknown type: read, with a warning
    finally:
        await client.stop()
    assert "unknown type 99" in caplog.text and "unknown type 42" in caplog.text
    assert set(accounts_of(caplog, "wechat_sdk.adapters.wechaty")) == {"work"}


async def test_a_failed_download_is_one_line_naming_the_account_and_its_last_error(
    wechat: WeChatHarness, caplog: pytest.LogCaptureFixture
) -> None:
    agent = Recorder()
    gw = await wechat.gateway(agent, dmPolicy="open", allowFrom=["*"])
    caplog.set_level(logging.INFO, logger="wechat_sdk")

    (message,) = await wechat.world.say("wxid_alice", kind="image")  # its file is missing

    lines = [r.getMessage() for r in caplog.records if message in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"media of message {message} not downloaded")
    assert lines[0].endswith("account=default reason=media_failed")
    assert [r.levelname for r in caplog.records if message in r.getMessage()] == ["WARNING"]
    last_error = gw.status()[0].last_error
    assert last_error is not None and last_error.startswith(f"media of message {message}")


async def test_the_service_clients_log_lines_cut_what_the_peer_sent(
    server: tuple[Script, str],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 100 KB message id, contact id or field value reaches a log line cut short."""
    huge = "x" * 100_000
    script, endpoint = server
    script.messages[huge] = pb.MessagePayloadResponse(
        id=huge, talker_id="wxid_a", text="?", type=42
    )
    client = client_for(endpoint, account_id="work")
    await client.start()
    caplog.set_level(logging.WARNING, logger="wechat_sdk.adapters.wechaty")
    try:
        script.push(25, {"contactId": "wxid_bot"})
        script.push(26, {"contactId": "wxid_" + huge, "data": "kicked"})  # another's LOGOUT
        script.push(22, {"qrcode": "https://x", "status": huge})  # not an integer
        script.push(2, {"messageId": huge})
        async for event in client.events():
            if getattr(event, "message_id", None) == huge:
                break
        await client.message(huge)  # a message of an unknown type: read, with a warning
    finally:
        await client.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) >= 3, lines
    assert all(huge[:50] in line for line in lines)
    assert [len(line) for line in lines if len(line) > 400] == []
