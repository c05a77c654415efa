"""The iLink page's rehearsal of going live, followed as written.

`wechat-sdk simulator serve` stands for iLink's server, the page's config (its port made
the one the server got) and the first bot's agent run in `wechat-sdk gateway run`, and the
page's shell lines play the phone and a user: the login, a stranger's pairing code, its
approval, and the agent's answer after it. ``$HOME`` is a new folder.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "ilink.md"
SECTION = "### Rehearse it on the simulator\n"
PAGE_PORT = "8710"
DEADLINE_S = 30.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="the page's lines use curl"),
]


def section() -> str:
    page = PAGE.read_text(encoding="utf-8")
    start = page.index(SECTION)
    return page[start : page.index("\n#", start + len(SECTION))]


def env_for(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("WECHAT_SDK_CONFIG", None)
    env.update(HOME=str(tmp_path / "home"), NO_COLOR="1", PYTHONUNBUFFERED="1")
    return env


def wait_for(what: str, condition: Callable[[], bool], log: Callable[[], str]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}\n{log()}"
        time.sleep(0.1)


@contextmanager
def running(args: list[str], cwd: Path, env: dict[str, str], out: Path) -> Iterator[None]:
    with out.open("wb") as sink:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        yield
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=DEADLINE_S) == 0, out.read_text(encoding="utf-8")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_rehearsal_runs_as_the_page_says(tmp_path: Path) -> None:
    text = section()
    (config_path,) = re.findall(r'^--8<-- "(docs/examples/config/[^"]+)"$', text, re.M)
    gateway_block, phone_block = re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S)
    check, gateway = gateway_block.splitlines()
    assert "`ilink-simulator.json5`" in text
    env = env_for(tmp_path)
    folder = tmp_path / "bot"
    folder.mkdir()
    shutil.copyfile(ROOT / "docs" / "examples" / "mybot.py", folder / "mybot.py")
    server_log = tmp_path / "server.log"
    serve = [sys.executable, "-m", "wechat_sdk", "simulator", "serve", "--port", "0"]
    with running([*serve, "--poll-hold-ms", "500"], folder, env, server_log):
        wait_for("the server's first line", lambda: "\n" in server_log.read_text(), lambda: "")
        first = server_log.read_text(encoding="utf-8").splitlines()[0]
        base = re.fullmatch(r"iLink server at (http://127\.0\.0\.1:(\d+)/)", first)
        assert base is not None, first
        port = base[2]
        config = (ROOT / config_path).read_text(encoding="utf-8")
        assert f"127.0.0.1:{PAGE_PORT}/" in config
        (folder / "ilink-simulator.json5").write_text(config.replace(PAGE_PORT, port))

        def shell(line: str) -> str:
            line = line.replace(PAGE_PORT, port)
            if line.startswith("wechat-sdk "):  # the command, from this interpreter
                args = [sys.executable, "-m", "wechat_sdk", *shlex.split(line)[1:]]
            else:
                args = ["bash", "-c", line.replace("curl ", "curl -sS --fail-with-body ", 1)]
            done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True)
            assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
            return done.stdout

        def sent() -> list[str]:
            with urllib.request.urlopen(f"{base[1]}sim/sent?account=bot") as answer:
                return [m["text"] for m in json.load(answer)]

        assert shell(check).rstrip().endswith("config OK")
        gateway_log = tmp_path / "gateway.log"
        assert gateway.startswith("wechat-sdk gateway run ")
        # -P: the folder is not put on sys.path by Python, as with the `wechat-sdk` command
        run = [sys.executable, "-P", "-m", "wechat_sdk", *shlex.split(gateway)[1:]]
        with running(run, folder, env, gateway_log):

            def log() -> str:
                return gateway_log.read_text(encoding="utf-8")

            wait_for("a QR code", lambda: "is waiting_for_scan" in log(), log)
            login, say, read, approve = phone_block.splitlines()
            shell(login)
            wait_for("the login", lambda: "account default is ready" in log(), log)
            assert "iLink login: confirmed" in log()
            shell(say)
            wait_for("the pairing code", lambda: bool(sent()), log)
            (code,) = re.findall(r"Pairing code: (\w+)", shell(read))
            assert "CODE" in approve
            shell(approve.replace("CODE", code))
            shell(say.replace('"hi"', '"hello"'))  # Alice's next message
            wait_for("the agent's answer", lambda: len(sent()) == 3, log)
            assert sent()[1:] == [
                "You're approved: WeChat assistant will answer your messages from now on.",
                "Hello alice@im.wechat! Ask me anything.",
            ]
    rehearsal = tmp_path / "home" / ".clawdbot" / "wechat-rehearsal"
    assert (rehearsal / "accounts" / "default" / "ilink-session.json").is_file()
    assert not (tmp_path / "home" / ".clawdbot" / "wechat").exists()
