"""``wechat-sdk simulator serve``: the standalone iLink server in its own process, driven
through its control API as a test in another language would drive it."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from simulator.ilink.cdn import decrypt
from simulator.ilink.process import serve_process

pytestmark = pytest.mark.slow  # a process of its own for each test

ALICE = "alice@im.wechat"
HEADERS = {"Content-Type": "application/json", "AuthorizationType": "ilink_bot_token"}


@pytest.fixture
async def served() -> AsyncIterator[str]:
    """The base URL of a ``simulator serve`` process on a free port, stopped after."""
    async with serve_process("--poll-hold-ms", "300") as simulator:
        yield simulator.base_url
    assert simulator.process.returncode == 0, simulator.output


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, token: str = ""
) -> tuple[int, Any]:
    headers = dict(HEADERS)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body) if body is not None else None
    async with http.request(method, url, data=data, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_a_client_logs_in_hears_a_user_and_answers_through_the_standalone_server(
    served: str,
) -> None:
    async with aiohttp.ClientSession() as http:
        status, index = await call(http, "GET", f"{served}sim/")
        assert status == 200 and index["cdn_base_url"] == f"{served}c2c"
        _, qr = await call(http, "POST", f"{served}ilink/bot/get_bot_qrcode?bot_type=3", {})
        status, account = await call(http, "POST", f"{served}sim/accounts/bot/login")
        assert status == 200 and account["logged_in"]
        _, login = await call(
            http, "GET", f"{served}ilink/bot/get_qrcode_status?qrcode={qr['qrcode']}"
        )
        token = login["bot_token"]
        assert login["ilink_bot_id"] == account["bot_id"]

        said = {"from": ALICE, "account": "bot", "text": "hi", "media": {"kind": "image"}}
        status, ids = await call(http, "POST", f"{served}sim/messages", said)
        assert status == 201 and len(ids["message_ids"]) == 1
        _, updates = await call(
            http, "POST", f"{served}ilink/bot/getupdates", {"get_updates_buf": ""}, token
        )
        [msg] = updates["msgs"]
        assert [i["type"] for i in msg["item_list"]] == [1, 2]
        image = msg["item_list"][1]["image_item"]
        async with http.get(image["media"]["full_url"]) as resp:
            plain = decrypt(await resp.read(), bytes.fromhex(image["aeskey"]))
        async with http.get(f"{served}sim/files/{ids['message_ids'][0]}") as resp:
            assert plain == await resp.read()

        reply = {
            "msg": {
                "to_user_id": ALICE,
                "client_id": "c1",
                "message_type": 2,
                "message_state": 2,
                "item_list": [{"type": 1, "text_item": {"text": "hello"}}],
                "context_token": msg["context_token"],
            }
        }
        _, sent = await call(http, "POST", f"{served}ilink/bot/sendmessage", reply, token)
        assert sent["ret"] == 0
        _, out = await call(http, "GET", f"{served}sim/sent?account=bot")
        assert [(e["to"], e["text"]) for e in out] == [(ALICE, "hello")]

        status, _ = await call(
            http, "POST", f"{served}sim/faults", {"kind": "logout", "account": "bot"}
        )
        assert status == 200
        _, expired = await call(http, "POST", f"{served}ilink/bot/getupdates", {}, token)
        assert expired["errcode"] == -14
        _, events = await call(http, "GET", f"{served}sim/events?since=0")
        assert [e["event"] for e in events["events"]].count("logout") == 1


async def test_the_control_api_says_what_to_change(served: str) -> None:
    async with aiohttp.ClientSession() as http:
        status, err = await call(http, "POST", f"{served}sim/accounts", {"name": "x"})
        assert status == 400 and err["error"].startswith("id: required key is missing")
        status, made = await call(http, "POST", f"{served}sim/accounts", {"id": "second"})
        assert status == 201 and made["bot_id"].endswith("@im.bot")
        status, err = await call(http, "POST", f"{served}sim/accounts/second/scan")
        assert status == 409 and "no iLink client is showing a QR code" in err["error"]
        status, err = await call(http, "POST", f"{served}sim/accounts/nobody/login")
        assert status == 404
        status, err = await call(
            http, "POST", f"{served}sim/messages", {"from": ALICE, "account": "nobody"}
        )
        assert status == 400 and "iLink account" in err["error"]
        status, err = await call(
            http, "POST", f"{served}sim/faults", {"kind": "earthquake", "account": "bot"}
        )
        assert status == 400 and err["error"].startswith("kind: expected one of disconnect|")
        async with http.post(f"{served}sim/messages", data="{oops") as resp:
            assert resp.status == 400
            assert (await resp.json())["error"] == "the body is not JSON"


def has_ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback")
async def test_it_serves_on_the_ipv6_loopback_with_the_address_bracketed() -> None:
    async with serve_process("--host", "::1", "--poll-hold-ms", "300") as simulator:
        base = simulator.base_url
        assert base.startswith("http://[::1]:")
        async with aiohttp.ClientSession() as http:
            status, index = await call(http, "GET", f"{base}sim/")
            assert status == 200 and index["cdn_base_url"] == f"{base}c2c"
            _, [account] = await call(http, "GET", f"{base}sim/accounts")
            assert account["base_url"] == f"{base}a/bot/"
            _, qr = await call(http, "POST", f"{base}ilink/bot/get_bot_qrcode?bot_type=3", {})
            assert qr["ret"] == 0
    assert simulator.process.returncode == 0, simulator.output
    assert f"curl -X POST {base}sim/messages" in simulator.output


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("127.0.0.1", "127.0.0.1"),
        pytest.param(
            "::1",
            "[::1]",
            marks=pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback"),
        ),
    ],
)
async def test_a_port_already_taken_is_one_clear_error(host: str, shown: str) -> None:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as taken:
        taken.bind((host, 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wechat_sdk", "simulator", "serve",
            "--host", host, "--port", str(port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert f"cannot serve on {shown}:{port}" in err.decode()
    assert "Traceback" not in err.decode() + out.decode()


async def test_a_reader_that_goes_away_does_not_stop_the_server() -> None:
    """``simulator serve --port 0 | head -1``: printing the guide to a closed pipe is no
    failure to bind; the server goes on serving."""
    import os
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wechat_sdk", "simulator", "serve", "--port", str(port),
        stdout=write, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    os.close(write)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                assert proc.returncode is None, "the server stopped"
                try:
                    status, index = await call(http, "GET", f"http://127.0.0.1:{port}/sim/")
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            assert status == 200 and index["base_url"] == f"http://127.0.0.1:{port}/"
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert "cannot serve" not in err.decode() and "Traceback" not in err.decode()
