"""A peer can send ids and names of any length (a 100 KB message id): what reaches a log
line is cut to a few dozen characters, so one message cannot flood the log."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from simulator import Recorder, SimulatedWeChat
from wechat_sdk.logtext import shown
from wechat_sdk.stores import MemoryStore

HUGE = "x" * 100_000
MOST = 400  # characters a log line may take (a line's own words, and a few cut values)


def test_shown_cuts_long_text_with_an_ellipsis() -> None:
    assert shown("short") == "short"
    assert shown("a" * 80) == "a" * 80
    cut = shown("a" * 81)
    assert len(cut) == 80 and cut.endswith("…")
    assert len(shown(HUGE, limit=20)) == 20
    assert shown("line\nbreak") == "line\\nbreak"  # one log line stays one line


def long_lines(caplog: pytest.LogCaptureFixture, prefix: str) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()[:200]}... ({len(r.getMessage())} chars)"
        for r in caplog.records
        if r.name.startswith(prefix) and len(r.getMessage()) > MOST
    ]


async def test_a_100_kb_message_id_is_logged_cut(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # every message of this world has a 100 KB id
    world = SimulatedWeChat(seed=0, run_tag=HUGE)
    world.add_account("default")
    agent = Recorder()
    config = {"channels": {"wechat": {"dmPolicy": "pairing", "puppet": "simulator"}}}
    gw = world.gateway(config, agent, state_dir=tmp_path / "state")
    await gw.start()
    try:
        await world.login("default")
        caplog.set_level(logging.DEBUG, logger="wechat_sdk")
        stranger = "wxid_" + HUGE
        world.add_contact(id=stranger, name="N" * 100_000)
        await world.say(stranger, "hello")  # a pairing request: logged with the sender
        await world.say(stranger, "again")  # a drop: logged with the message id
        world.add_contact(id="wxid_friend", name="Friend")
        await gw.pairing.approve(gw.pairing.list()[0].code)
        await world.say(stranger, kind="image")  # an image without its file: download fails
    finally:
        await gw.close()
    assert any(HUGE[:50] in r.getMessage() for r in caplog.records)  # the ids are logged
    assert long_lines(caplog, "wechat_sdk") == []


async def test_a_100_kb_message_id_taken_in_again_is_logged_cut(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The intake's retry lines (a store unreachable for a moment) wrote the id whole."""
    world = SimulatedWeChat(seed=0, run_tag=HUGE)
    world.add_account("default")
    store = MemoryStore()
    check = store.dedupe.check_and_add
    failures = [ConnectionError("the store cannot be reached " + HUGE)]

    def blinking(*args: Any) -> bool:
        if failures:
            raise failures.pop()
        return check(*args)

    store.dedupe.check_and_add = blinking  # type: ignore[method-assign]
    config = {"channels": {"wechat": {"dmPolicy": "open", "allowFrom": ["*"]}}}
    gw = world.gateway(config, Recorder(), state_dir=tmp_path / "state", store=store)
    await gw.start()
    try:
        await world.login("default")
        caplog.set_level(logging.DEBUG, logger="wechat_sdk")
        await world.say("wxid_alice", "hello", settle=False)
        await world.advance(5)
    finally:
        await gw.close()
    assert "reason=intake_retry" in caplog.text
    assert long_lines(caplog, "wechat_sdk") == []
    assert len(gw.status()[0].last_error or "") <= 500
