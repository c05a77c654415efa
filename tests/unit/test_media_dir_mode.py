"""Inbound media folders are the owner's alone (0700), like the state directory: other
users of the machine cannot even list what the bot was sent."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import pytest

from simulator import Recorder
from simulator.pytest_plugin import WeChatHarness


@pytest.fixture
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the usual umask, under which a plain mkdir gives 0755
    try:
        yield
    finally:
        os.umask(old)


async def test_inbound_media_folders_are_owner_only(
    wechat: WeChatHarness, usual_umask: None
) -> None:
    agent = Recorder()
    await wechat.gateway(agent, dmPolicy="open", allowFrom=["*"])

    await wechat.world.say(
        "wxid_alice", "", media={"kind": "image", "name": "cat.png", "size": 4000}
    )

    (turn,) = agent.turns
    (item,) = turn.media
    assert item.path is not None and item.path.is_file()
    media = wechat.state_dir / "media"
    for folder in (media, media / "inbound", media / "inbound" / "default"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(item.path.stat().st_mode) == 0o600
