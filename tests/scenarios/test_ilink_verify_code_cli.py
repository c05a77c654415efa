"""``wechat-sdk gateway run`` in a terminal, on an iLink account whose phone asks for the
number it shows: real processes (the standalone simulator, the gateway with a
pseudo-terminal as its stdin, the CLI). The gateway asks on the terminal; a wrong number
typed there is said and asked again; ``gateway status`` says what the login waits for;
``wechat-sdk channels verify-code`` gives the right one, and the account answers."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from standalone_simulator import sim
from waiting import until

from simulator.ilink.process import serve_process

pytestmark = pytest.mark.slow  # three processes, on the real clock

ALICE = "alice@im.wechat"
PROMPT = b"[default] Enter the number WeChat shows on the phone: "


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("WECHAT_SDK_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "wechat_sdk", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


async def shown(stream: asyncio.StreamReader, text: bytes, seen: bytearray) -> None:
    """Read the gateway's stdout until ``text`` shows (the terminal as a person sees it)."""
    async with asyncio.timeout(20):
        while text not in seen:
            chunk = await stream.read(4096)
            assert chunk, f"stdout ended before {text!r}: {bytes(seen)!r}"
            seen.extend(chunk)
    del seen[: seen.index(text) + len(text)]


async def test_gateway_run_asks_on_the_terminal_and_the_cli_gives_the_number(
    tmp_path: Path,
) -> None:
    config, state, log = tmp_path / "config.json5", tmp_path / "state", tmp_path / "run.log"
    async with serve_process() as served, aiohttp.ClientSession() as http:
        base = served.base_url
        wechat = {
            "puppet": "ilink",
            "puppetOptions": {"baseUrl": base},
            "dmPolicy": "open",
            "allowFrom": ["*"],
            "qrCode": False,
        }
        config.write_text(json.dumps({"channels": {"wechat": wechat}}))
        controller, terminal = pty.openpty()
        env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
        env.pop("WECHAT_SDK_CONFIG", None)
        with log.open("wb") as err:
            gateway = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "wechat_sdk", "gateway", "run",
                "--config", str(config), "--state-dir", str(state),
                stdin=terminal, stdout=asyncio.subprocess.PIPE, stderr=err, env=env,
            )  # fmt: skip
        os.close(terminal)
        assert gateway.stdout is not None
        seen = bytearray()
        try:

            async def asked_for_a_code() -> bool:
                return bool(await sim(http, "GET", f"{base}sim/qrcodes"))

            await until("a QR code", asked_for_a_code)
            # the owner scans; the phone shows a number instead of logging in
            phone = await sim(http, "POST", f"{base}sim/accounts/bot/login", {"verify_code": True})
            number = phone["phone_shows"]
            assert number == (await sim(http, "GET", f"{base}sim/accounts/bot/phone"))["shows"]
            wrong = f"{(int(number) + 1) % 1_000_000:06d}"

            await shown(gateway.stdout, PROMPT, seen)  # asked on the terminal
            os.write(controller, f"{wrong}\n".encode())  # typed wrong
            await shown(gateway.stdout, b"That number is not the one the phone shows. ", seen)
            await shown(gateway.stdout, PROMPT, seen)  # and asked again

            status = await asyncio.to_thread(
                cli, "gateway", "status", "--json", "--state-dir", state
            )
            (account,) = json.loads(status.stdout)
            assert account["state"] == (
                "waiting_for_scan: wrong number: enter the number the phone shows"
            )

            # from another shell: the CLI gives the number to the running gateway
            given = await asyncio.to_thread(
                cli, "channels", "verify-code", "--state-dir", state, "--account", "default",
                number,
            )  # fmt: skip
            assert given.returncode == 0, given.stderr
            assert given.stdout.strip() == "the number is right: the login goes on"
            again = await asyncio.to_thread(
                cli, "channels", "verify-code", "--state-dir", state, number
            )
            assert again.returncode == 1
            assert "is not waiting for a number" in again.stderr

            async def ready() -> bool:
                done = await asyncio.to_thread(
                    cli, "gateway", "status", "--json", "--state-dir", state
                )
                accounts: list[dict[str, Any]] = json.loads(done.stdout or "[]")
                return bool(accounts) and accounts[0]["state"] == "ready"

            await until("ready", ready, within_s=30)
            said = {"from": ALICE, "account": "bot", "text": "hello after the number"}
            await sim(http, "POST", f"{base}sim/messages", said)

            async def answered() -> bool:
                sent = await sim(http, "GET", f"{base}sim/sent?account=bot&to={ALICE}")
                return bool(sent)

            await until("the answer", answered)
            sent = await sim(http, "GET", f"{base}sim/sent?account=bot&to={ALICE}")
            assert [e["text"] for e in sent] == ["hello after the number"]  # (the echo agent)
        finally:
            if gateway.returncode is None:
                gateway.terminate()
            await asyncio.wait_for(gateway.wait(), 30)
            os.close(controller)
    text = log.read_text()
    # the command the log gives reaches this gateway: it names its state directory
    assert (
        "the phone shows a number: enter it here, or give it with: wechat-sdk channels "
        f"verify-code --state-dir {state} --account default NUMBER" in text
    )
    assert "wrong number: the phone shows a number" in text
    assert number not in text and wrong not in text  # what a person needs, not the numbers
