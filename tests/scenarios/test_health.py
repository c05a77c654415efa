"""The HTTP health endpoints: real requests to 127.0.0.1 on a port the system picks
(``health.port: 0``), against a gateway on the simulator."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.agent import AgentTurn
from wechat_sdk.config import ConfigError, parse_config
from wechat_sdk.gateway import Gateway

HEALTH: dict[str, Any] = {"health": {"port": 0}}


async def echo(turn: AgentTurn) -> str:
    return turn.text


def _get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


async def get(gw: Gateway, path: str, method: str = "GET") -> tuple[int, Any]:
    assert gw.health is not None and gw.health.port
    code, headers, body = await asyncio.to_thread(_get, gw.health.port, path, method)
    if method == "HEAD":
        assert body == b""
        return code, None
    assert headers["Content-Type"].startswith("application/json")
    return code, json.loads(body)


async def test_healthz_answers_while_the_account_still_waits_for_a_scan(
    wechat: WeChatHarness,
) -> None:
    gw = await wechat.gateway(echo, login=False, **HEALTH)
    await wechat.world.run_until_idle()
    assert await get(gw, "/healthz") == (200, {"status": "ok"})
    code, body = await get(gw, "/readyz")
    assert code == 503
    assert body["ready"] is False
    assert body["accounts"] == [
        {
            "account": "default",
            "enabled": True,
            "lifecycle": "waiting_for_scan",
            "state": "waiting_for_scan",
        }
    ]
    assert body["reason"] == "not ready: default (waiting_for_scan)"


async def test_readyz_is_200_once_logged_in_and_503_after_a_logout(
    wechat: WeChatHarness,
) -> None:
    gw = await wechat.gateway(echo, **HEALTH)
    code, body = await get(gw, "/readyz")
    assert (code, body["ready"], body["accounts"][0]["state"]) == (200, True, "ready")
    assert "reason" not in body

    wechat.world.fault("logout")
    await wechat.world.run_until_idle()
    code, body = await get(gw, "/readyz")
    assert code == 503
    assert body["accounts"][0]["state"] == "logged_out: logged out on the phone"


async def test_readyz_waits_for_every_enabled_account_and_ignores_disabled_ones(
    wechat: WeChatHarness,
) -> None:
    wechat.world.add_account("work")
    config = {
        "channels": {
            "wechat": {
                **HEALTH,
                "defaultAccountId": "home",
                "accounts": {"home": {}, "work": {}, "old": {"enabled": False}},
            }
        }
    }
    gw = await wechat.gateway(echo, config, login=["home"])
    code, body = await get(gw, "/readyz")
    assert code == 503
    assert body["reason"] == "not ready: work (waiting_for_scan)"
    assert {a["account"]: a["enabled"] for a in body["accounts"]} == {
        "home": True,
        "work": True,
        "old": False,
    }

    await wechat.world.login("work")
    code, body = await get(gw, "/readyz")
    assert code == 200 and body["ready"] is True


async def test_readyz_counts_only_the_accounts_this_gateway_runs(
    wechat: WeChatHarness, tmp_path: Path
) -> None:
    """``gateway run --accounts home``: the accounts it does not run are listed (stopped)
    and do not hold its readiness back (it answered 503 as long as it ran)."""
    wechat.world.add_account("work")
    config = {
        "channels": {
            "wechat": {
                **HEALTH,
                "defaultAccountId": "home",
                "accounts": {"home": {}, "work": {}},
            }
        }
    }
    gw = wechat.world.gateway(config, echo, state_dir=tmp_path, only_accounts=["home"])
    wechat.gateways.append(gw)
    await gw.start()
    code, body = await get(gw, "/readyz")
    assert (code, body["reason"]) == (503, "not ready: home (waiting_for_scan)")
    await wechat.world.login("home")
    code, body = await get(gw, "/readyz")
    assert (code, body["ready"]) == (200, True)
    assert {a["account"]: a["lifecycle"] for a in body["accounts"]} == {
        "home": "ready",
        "work": "stopped",
    }


async def test_no_secret_in_the_readiness_body(wechat: WeChatHarness) -> None:
    secret = "puppet_service_token_do_not_leak"
    gw = await wechat.gateway(echo, puppetOptions={"token": secret}, **HEALTH)
    _, _, raw = await asyncio.to_thread(_get, gw.health.port if gw.health else 0, "/readyz")
    assert secret not in raw.decode()


async def test_unknown_path_and_method_are_refused(wechat: WeChatHarness) -> None:
    gw = await wechat.gateway(echo, login=False, **HEALTH)
    code, body = await get(gw, "/metrics")
    assert code == 404 and "use /healthz or /readyz" in body["error"]
    code, body = await get(gw, "/healthz", method="POST")
    assert code == 405
    assert await get(gw, "/healthz", method="HEAD") == (200, None)


async def test_garbage_request_gets_400_and_the_server_keeps_serving(
    wechat: WeChatHarness,
) -> None:
    gw = await wechat.gateway(echo, login=False, **HEALTH)
    assert gw.health is not None and gw.health.port
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.health.port)
    writer.write(b"hello there\r\n\r\n")
    await writer.drain()
    # (aiohttp answers a request line it cannot parse as HTTP/1.0: it has no version to echo)
    assert re.match(rb"HTTP/1\.[01] 400 Bad Request\r\n", await reader.read())
    writer.close()
    assert (await get(gw, "/healthz"))[0] == 200


async def test_health_server_stops_with_the_gateway(wechat: WeChatHarness) -> None:
    gw = await wechat.gateway(echo, login=False, **HEALTH)
    assert gw.health is not None and gw.health.port
    port = gw.health.port
    await gw.close()
    assert gw.health is None
    with pytest.raises(ConnectionRefusedError):
        await asyncio.to_thread(_get, port, "/healthz")


async def test_reload_moves_the_health_server_to_the_new_port(wechat: WeChatHarness) -> None:
    gw = await wechat.gateway(echo, **HEALTH)
    assert gw.health is not None and gw.health.port
    old_port = gw.health.port
    with socket.socket() as s:  # a port that is free right now
        s.bind(("127.0.0.1", 0))
        new_port = s.getsockname()[1]
    await gw.reload(
        parse_config(json.dumps({"channels": {"wechat": {"health": {"port": new_port}}}}))
    )
    assert gw.health is not None and gw.health.port == new_port
    assert (await get(gw, "/healthz"))[0] == 200
    with pytest.raises(ConnectionRefusedError):
        await asyncio.to_thread(_get, old_port, "/healthz")


async def test_port_in_use_is_a_config_error_naming_the_key(wechat: WeChatHarness) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as info:
            await wechat.gateway(echo, login=False, health={"port": port})
    (problem,) = info.value.problems
    assert problem.path == "channels.wechat.health.port"
    # the words the docs show: the system's, not asyncio's repeat of the address
    assert problem.message.startswith(
        f"cannot listen on 127.0.0.1:{port} (Address already in use): choose a free port"
    )
    assert wechat.gateways[0].runners == {}  # no account was started


def test_health_under_an_account_is_refused_with_the_place_to_move_it() -> None:
    text = json.dumps({"channels": {"wechat": {"accounts": {"a": {"health": {"port": 8080}}}}}})
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert "channels.wechat.accounts.a.health: health is gateway-wide" in str(info.value)
    assert "move it to channels.wechat.health" in str(info.value)


async def test_serve_that_cannot_start_says_so_without_a_stopping_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from wechat_sdk.gateway.service import serve

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "config.json5"
        config.write_text(json.dumps({"channels": {"wechat": {"health": {"port": port}}}}))
        caplog.set_level(logging.INFO)
        with pytest.raises(ConfigError):
            await serve(config, tmp_path / "state", echo)
    assert "gateway stopped" in caplog.text
    assert "in-flight replies" not in caplog.text  # nothing was running to wait for


def test_a_cluster_gateway_holding_no_account_is_ready_and_says_why() -> None:
    """More gateways than accounts: the one holding none stands by, ready to take one up
    (a readiness probe failing it forever would hold a rolling deploy back)."""
    from wechat_sdk.gateway.health import readiness
    from wechat_sdk.gateway.status import AccountStatus

    statuses = [AccountStatus(account="default", lifecycle="stopped")]
    ready, body = readiness(statuses, {"default"}, set(), cluster=True)
    assert ready and body["reason"] == (
        "holds no account now: the cluster's other gateways hold them"
    )
    ready, body = readiness(statuses, {"default"}, set())
    assert not ready and body["reason"] == "no enabled WeChat account"
