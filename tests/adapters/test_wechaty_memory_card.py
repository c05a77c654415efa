"""A Node puppet's memory card (its login session) kept in Redis with a Redis store: saved
from one gateway's sidecar, restored for the next gateway's before it starts, on a real
redis-server. The sidecar here is a stand-in for Node (a Python script started as the
sidecar is) that reads and writes the card file as memory-card's file storage does."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from wechat_sdk import parse_config
from wechat_sdk.adapters.wechaty import sidecar as sidecar_module
from wechat_sdk.adapters.wechaty.memory_card import RedisMemoryCard, card_file
from wechat_sdk.adapters.wechaty.service import make_puppet
from wechat_sdk.adapters.wechaty.sidecar import SidecarPuppet
from wechat_sdk.config import accounts_of
from wechat_sdk.puppets import SharedRedis

SECRET = "cookie-of-the-session-7f3a"

# As the sidecar: says it listens, and keeps the card at WECHAT_SDK_MEMORY +
# '.memory-card.json'. At start it notes what card it found (in found.json beside it: what
# the puppet would log in with), then logs in (a card with the session); at a stop
# (stdin closed, or SIGTERM) it saves the card once more, as Wechaty does.
FAKE_SIDECAR = textwrap.dedent(
    """
    import json, os, signal, sys
    card = os.environ["WECHAT_SDK_MEMORY"] + ".memory-card.json"
    found = os.path.join(os.path.dirname(card), "found.json")
    login = os.environ["FAKE_LOGIN"]
    try:
        with open(card) as fh:
            text = fh.read()
    except FileNotFoundError:
        text = None
    with open(found, "w") as fh:
        json.dump(text, fh)
    def save(stage):
        with open(card, "w") as fh:  # as Node's fs.writeFile: in place
            json.dump({"puppet": {"cookies": login, "stage": stage}}, fh)
    save("logged in")
    print(json.dumps({"event": "listening"}), flush=True)
    def stop(*_):
        save("stopped")
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    sys.stdin.read()
    stop()
    """
)


@pytest.fixture
def fake_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """The sidecar runs the stand-in instead of Node; ``login(session)`` sets the session
    the next sidecar logs in with."""
    script_dir = tmp_path / "fake-sidecar"
    script_dir.mkdir()
    (script_dir / "sidecar.cjs").write_text(FAKE_SIDECAR)

    async def installed(*args: Any, **kwargs: Any) -> Path:
        return script_dir

    monkeypatch.setattr(sidecar_module, "ensure_installed", installed)
    monkeypatch.setattr(sidecar_module, "require_tool", lambda tool: sys.executable)
    monkeypatch.setattr(sidecar_module, "SIDECAR_DIR", script_dir)

    def login(session: str) -> None:
        monkeypatch.setenv("FAKE_LOGIN", session)

    login(SECRET)
    return login


@pytest.fixture
def shared(redis_url: str, redis_namespace: str) -> SharedRedis:
    return SharedRedis(redis_url, redis_namespace)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url, decode_responses=True)
    yield c
    c.close()


def sidecar_puppet(state_dir: Path, shared: SharedRedis) -> SidecarPuppet:
    """A Node puppet's account as a gateway on a Redis store makes it."""
    config = parse_config(json.dumps({"channels": {"wechat": {"puppet": "wechaty-puppet-mock"}}}))
    puppet = make_puppet(accounts_of(config).accounts["default"], state_dir, shared)
    assert isinstance(puppet, SidecarPuppet) and puppet.sidecar.memory_card is not None
    puppet.sidecar.memory_card.save_every_s = 0.05
    return puppet


def found(state_dir: Path) -> Any:
    """The card the sidecar found at its start (None: none)."""
    text = json.loads((state_dir / "accounts" / "default" / "found.json").read_text())
    return None if text is None else json.loads(text)


async def eventually(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 (Redis is written by the card's own task)
            await asyncio.sleep(0.02)


async def test_a_card_saved_by_one_gateways_sidecar_is_restored_for_another_gateway(
    tmp_path: Path,
    fake_node: Callable[[str], None],
    shared: SharedRedis,
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = shared.account_key("wechaty", "default", "memory-card")
    first = sidecar_puppet(tmp_path / "gateway-a", shared)
    await first.sidecar.start()
    try:
        assert found(tmp_path / "gateway-a") is None  # nothing kept yet: a QR login
        # saved while the sidecar runs (a gateway killed now would leave it behind)
        await eventually(lambda: client.get(key) is not None)
        assert json.loads(str(client.get(key)))["puppet"]["cookies"] == SECRET
    finally:
        await first.close()
    assert json.loads(str(client.get(key)))["puppet"]["stage"] == "stopped"  # saved at stop

    # another machine, with an older card of its own from a time it ran the account
    other = tmp_path / "gateway-b"
    old = card_file(other / "accounts" / "default")
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"puppet": {"cookies": "an older session"}}))
    fake_node("a session of the second gateway")
    second = sidecar_puppet(other, shared)
    await second.sidecar.start()
    try:
        assert found(other) == {"puppet": {"cookies": SECRET, "stage": "stopped"}}
        assert old.stat().st_mode & 0o777 == 0o600  # owner-only
    finally:
        await second.close()
    kept = json.loads(str(client.get(key)))["puppet"]["cookies"]
    assert kept == "a session of the second gateway"
    assert SECRET not in caplog.text  # the session is never logged


async def test_a_corrupt_card_in_redis_is_logged_and_skipped_for_a_fresh_login(
    tmp_path: Path,
    fake_node: Callable[[str], None],
    shared: SharedRedis,
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = shared.account_key("wechaty", "default", "memory-card")
    client.set(key, '{"puppet": {"cookies": "cut off')
    stale = card_file(tmp_path / "accounts" / "default")
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"puppet": {"cookies": "an older session"}}))
    puppet = sidecar_puppet(tmp_path, shared)
    with caplog.at_level(logging.WARNING):
        await puppet.sidecar.start()
    try:
        assert found(tmp_path) is None  # a fresh login
        (line,) = [r for r in caplog.records if "memory_card_unreadable" in r.getMessage()]
        assert "not a JSON object" in line.getMessage() and "cut off" not in caplog.text
        await eventually(lambda: '"cut off' not in str(client.get(key)))  # the new card
        assert json.loads(str(client.get(key)))["puppet"]["cookies"] == SECRET
    finally:
        await puppet.close()


async def test_a_gateway_that_lost_the_accounts_lease_does_not_save_its_card(
    tmp_path: Path, shared: SharedRedis, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # (a paused gateway that wakes up must not put its older session back)
    lease = f"{shared.namespace}:wechat:lease:default"
    client.set(lease, "gateway-b 8")  # another gateway took the account over
    key = shared.account_key("wechaty", "default", "memory-card")
    client.set(key, json.dumps({"puppet": {"cookies": "the new holder's"}}))
    fenced = SharedRedis(shared.url, shared.namespace, lease_key=lease, lease_value="gateway-a 7")
    file = tmp_path / "wechaty.memory-card.json"
    card = RedisMemoryCard(fenced, "default", file)
    try:
        file.write_text(json.dumps({"puppet": {"cookies": "the old holder's"}}))
        with caplog.at_level(logging.WARNING):
            await card.save()
        assert "reason=lease_lost" in caplog.text
        assert json.loads(str(client.get(key)))["puppet"]["cookies"] == "the new holder's"
    finally:
        await card.close()
