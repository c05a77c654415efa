"""An iLink account whose ``puppetOptions.baseUrl`` changed (a rehearsal on the simulator,
then another server) does not use the login kept from the old server: one log line says
so, a new QR code is shown by the new server, and the old server's long-poll cursor,
context tokens and earlier tokens are not used there. In every store that keeps iLink
state: SQLite (the default) and Redis. Two simulated worlds serve the two servers."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from waiting import until

from simulator import SimulatedWeChat
from simulator.ilink import ILinkServer
from wechat_sdk import AgentTurn, Gateway, parse_config
from wechat_sdk.adapters.ilink.state import ILinkState, SqliteILinkState
from wechat_sdk.clock import RealClock
from wechat_sdk.stores.sqlite import SqliteStore

ALICE = "alice@im.wechat"


async def agent(turn: AgentTurn) -> str:
    return f"echo: {turn.text}"


def world(seed: int, numbered_from: int = 0) -> SimulatedWeChat:
    made = SimulatedWeChat(seed=seed, clock=RealClock(), qr_ttl_s=30)
    made.add_account("default", transport="ilink")
    made.add_contact(ALICE, name="Alice")
    # two real servers' message ids never meet; two simulated worlds number theirs alike
    for n in range(numbered_from):
        made.ilink_state.wire_id(f"numbered-before-{n}")
    return made


@pytest.fixture
async def servers() -> AsyncIterator[tuple[ILinkServer, ILinkServer]]:
    """The old server (the rehearsal's) and the new one: two worlds, two servers."""
    async with (
        await world(1).ilink_server(poll_hold_s=0.3) as old,
        await world(2, numbered_from=100).ilink_server(poll_hold_s=0.3) as new,
    ):
        yield old, new


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest) -> str:
    """The config's ``store`` block ("" for the default, SQLite)."""
    if request.param == "sqlite":
        return ""
    url, namespace = (request.getfixturevalue(f) for f in ("redis_url", "redis_namespace"))
    return f'store: {{ kind: "redis", url: "{url}", namespace: "{namespace}" }},'


def gateway(server: ILinkServer, store: str, state_dir: Path) -> Gateway:
    config = parse_config(
        f"""{{ channels: {{ wechat: {{
            puppet: "ilink",
            puppetOptions: {{ baseUrl: "{server.base_url}", cdnBaseUrl: "{server.cdn_base_url}" }},
            dmPolicy: "open", allowFrom: ["*"], qrCode: false, {store}
        }} }} }}"""
    )
    return Gateway(config, agent=agent, state_dir=state_dir)


def kept_state(store: str, state_dir: Path, request: pytest.FixtureRequest) -> ILinkState:
    """The account's iLink state where the gateway keeps it."""
    if not store:
        return SqliteILinkState(SqliteStore(state_dir / "wechat-sdk.sqlite3").database, "default")
    from wechat_sdk.adapters.ilink.redis_state import RedisILinkState
    from wechat_sdk.puppets import SharedRedis

    shared = SharedRedis(
        request.getfixturevalue("redis_url"), request.getfixturevalue("redis_namespace")
    )
    return RedisILinkState(shared, "default")


async def answered(server: ILinkServer, text: str) -> None:
    await server.world.say(ALICE, text, account="default", settle=False)
    await until(f"the answer to {text!r}", lambda: f"echo: {text}" in server.world.texts(to=ALICE))


async def test_a_login_kept_from_another_server_is_not_used_after_base_url_changes(
    servers: tuple[ILinkServer, ILinkServer],
    store: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    caplog.set_level(logging.DEBUG)
    old, new = servers
    async with gateway(old, store, tmp_path) as rehearsal:
        await until("a QR code", lambda: rehearsal.status()[0].qr_url is not None)
        await old.world.login("default")
        await until("ready", lambda: rehearsal.status()[0].lifecycle == "ready")
        await answered(old, "one")
        # the session expires once: its token is kept as an earlier one (offered to the
        # next QR code of that server), and the bot logs in again
        old.world.fault("logout")
        await until("a new QR code", lambda: rehearsal.status()[0].qr_url is not None)
        await old.world.login("default")
        await until("ready again", lambda: rehearsal.status()[0].lifecycle == "ready")
        await answered(old, "two")
    state = kept_state(store, tmp_path, request)
    try:
        old_cursor = await state.cursor()
        assert old_cursor and await state.context_token(ALICE)
    finally:
        await state.close()
    old_tokens = {q.token for q in old.world.ilink_state.qr.codes.values() if q.token}
    assert len(old_tokens) == 2
    old_texts = list(old.world.texts(to=ALICE))

    # the config now names the new server: the old server's login is not used
    async with gateway(new, store, tmp_path) as live:
        await until("a QR code of the new server", lambda: live.status()[0].qr_url is not None)
        assert live.status()[0].lifecycle == "waiting_for_scan"
        state = kept_state(store, tmp_path, request)
        try:  # the old server's cursor, context tokens and windows are not kept for this one
            assert await state.cursor() in ("", None)
            assert await state.context_token(ALICE) is None
            assert await state.windows() == {}
        finally:
            await state.close()
        # the new server's QR code was not offered the old server's tokens
        assert [q.local_tokens for q in new.world.ilink_state.qr.codes.values()] == [()]
        await new.world.login("default")
        await until("ready on the new server", lambda: live.status()[0].lifecycle == "ready")
        await answered(new, "three")
        await old.world.say(ALICE, "on the old server", account="default", settle=False)
        await asyncio.sleep(1.0)  # (time for an answer through the old server, were one)
    assert old.world.texts(to=ALICE) == old_texts  # nothing more went through the old one
    assert new.world.texts(to=ALICE) == ["echo: three"]

    lines = [r.getMessage() for r in caplog.records if "reason=ilink_server_changed" in r.message]
    assert len(lines) == 1, lines
    (line,) = lines
    assert "account default" in line
    assert old.base_url.rstrip("/") in line and new.base_url.rstrip("/") in line
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert not any(token in logged for token in old_tokens)
    kept_login = await kept_session(store, tmp_path, request)
    assert not set(kept_login.get("earlier_tokens", [])) & old_tokens


async def kept_session(store: str, state_dir: Path, request: pytest.FixtureRequest) -> Any:
    """The kept login's JSON, where the gateway keeps it."""
    if not store:
        path = state_dir / "accounts" / "default" / "ilink-session.json"
        return json.loads(path.read_text(encoding="utf-8"))
    from redis.asyncio import Redis

    from wechat_sdk.puppets import SharedRedis

    shared = SharedRedis(
        request.getfixturevalue("redis_url"), request.getfixturevalue("redis_namespace")
    )
    client = Redis.from_url(shared.url, decode_responses=True)
    try:
        raw = await client.get(shared.account_key("ilink", "default", "session"))
    finally:
        await client.aclose()
    return json.loads(raw)
