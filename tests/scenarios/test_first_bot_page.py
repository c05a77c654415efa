"""The "Your first bot" page, followed as written.

`pytest`: the folder holds only the agent and the test file the page tells the reader to
save, no pytest configuration, and pytest runs there in this interpreter's environment
(where wechat-sdk is installed with its test extra, which holds what ``.[testing]``
installs). The run must pass with no warning: the plugin needs no ``asyncio_mode`` and no
ini file.

`wechat-sdk gateway run`: the page's command, in a folder with the agent and the config the
page shows, with no other config anywhere (``$HOME`` is a new folder).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "first-bot.md"
# "Save this as `mybot.py`:" (or "save this next to ... as ..."), then a block including a file
SAVE_AS = re.compile(
    r"[Ss]ave this [^\n]*?\bas `(?P<name>[^`]+)`[^\n]*\n\n"
    r"```\w+\n--8<-- \"(?P<path>docs/examples/[^\"]+)\"\n```"
)

BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)
DEADLINE_S = 30.0

pytestmark = pytest.mark.slow


def clean_env(tmp_path: Path) -> dict[str, str]:
    """This environment without what this run's pytest or config settings would add."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("WECHAT_SDK_CONFIG", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["NO_COLOR"] = "1"
    return env


def files_to_save() -> dict[str, Path]:
    """What the page tells the reader to save, by name, with the file its block shows."""
    page = PAGE.read_text(encoding="utf-8")
    return {m["name"]: ROOT / m["path"] for m in SAVE_AS.finditer(page)}


def test_the_page_says_which_two_files_to_save() -> None:
    files = files_to_save()
    assert files["mybot.py"] == ROOT / "docs" / "examples" / "mybot.py"
    assert files["test_mybot.py"] == ROOT / "docs" / "examples" / "test_mybot.py"
    page = PAGE.read_text(encoding="utf-8")
    assert "python3 -m pip install '.[testing]'" in BASH_BLOCK.findall(page)[0]


def test_no_page_tells_to_install_wechat_sdk_from_pypi() -> None:
    # the `wechat-sdk` on PyPI is another project: `pip install 'wechat-sdk[testing]'` would
    # install it, without pytest-asyncio and without this SDK
    from_pypi = re.compile(r"pip install\s+['\"]?wechat-sdk\b")
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"^```(?:bash|sh|shell|console)\n(.*?)^```", text, re.M | re.S):
            assert not from_pypi.search(block), f"{page.name}: {block}"


def test_pytest_passes_in_a_folder_with_only_the_two_files(tmp_path: Path) -> None:
    files = files_to_save()
    for name in ("mybot.py", "test_mybot.py"):
        shutil.copyfile(files[name], tmp_path / name)
    tests = len(re.findall(r"^async def test_", (tmp_path / "test_mybot.py").read_text(), re.M))
    assert tests >= 3
    result = subprocess.run(
        # -P: the folder is not put on sys.path by Python, as with the `pytest` command
        [sys.executable, "-P", "-m", "pytest", "-W", "error", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mybot.py", "test_mybot.py"]
    assert re.search(r"^rootdir: ", result.stdout, re.M), output
    assert "configfile:" not in result.stdout, f"an ini file above {tmp_path} was used:\n{output}"
    assert result.returncode == 0, output
    assert re.search(rf"^{tests} passed in ", result.stdout.splitlines()[-1].strip("= ")), output
    assert "warning" not in output.lower(), output


def test_the_gateway_command_runs_the_agent_on_the_pages_config(tmp_path: Path) -> None:
    page = PAGE.read_text(encoding="utf-8")
    files = files_to_save()
    config = files["wechat.json5"]
    assert config.parent == ROOT / "docs" / "examples" / "config"
    assert '"simulator"' in config.read_text(encoding="utf-8")
    (command,) = [
        line
        for block in BASH_BLOCK.findall(page)
        for line in block.splitlines()
        if line.startswith("wechat-sdk gateway run")
    ]
    assert command == "wechat-sdk gateway run --config wechat.json5 --agent mybot:agent"
    folder = tmp_path / "bot"
    folder.mkdir()
    shutil.copyfile(files["mybot.py"], folder / "mybot.py")
    shutil.copyfile(config, folder / "wechat.json5")
    env = clean_env(tmp_path)
    env["HOME"] = str(tmp_path / "home")  # the state goes to ~/.clawdbot/wechat
    log = tmp_path / "gateway.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            # -P: the folder is not put on sys.path by Python, as with the `wechat-sdk` command
            [sys.executable, "-P", "-m", "wechat_sdk", *shlex.split(command)[1:]],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + DEADLINE_S
        while "account default is ready" not in log.read_text(encoding="utf-8"):
            assert proc.poll() is None, log.read_text(encoding="utf-8")
            assert time.monotonic() < deadline, log.read_text(encoding="utf-8")
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=DEADLINE_S) == 0, log.read_text(encoding="utf-8")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text(encoding="utf-8")
    for shown in ("logged in as Bot default (wxid_bot_default)", "account default is ready"):
        assert f"`{shown}`" in page
        assert shown in text
    assert "gateway stopped" in text
    assert (tmp_path / "home" / ".clawdbot" / "wechat").is_dir()
