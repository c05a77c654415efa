"""wechaty-puppet-wechat's browser: found on the system, and its errors said in one line.

No Node here: the Node error is the one the real sidecar gave (puppeteer 13.7, pinned by
the lock file, without a browser; install scripts never download one).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from wechat_sdk import Gateway, parse_config
from wechat_sdk.adapters.wechaty import sidecar as sidecar_module
from wechat_sdk.adapters.wechaty.sidecar import (
    Sidecar,
    SidecarError,
    SidecarPuppet,
    browser_options,
    explain_puppet_error,
    find_browser,
)
from wechat_sdk.puppet import PuppetError

MODULES = "/home/you/.clawdbot/wechat/node/npm-2765c6ae6520/node_modules"
#: what the Python client raised, word for word but the cache's path, on a host without a
#: browser (``UNKNOWN: `` is the gRPC status the Puppet Service answered Start with)
NO_BROWSER = (
    "UNKNOWN: Error: Could not find expected browser (chrome) locally. Run `npm install` to "
    "download the correct Chromium revision (982053).\n"
    + "\n".join(
        f"    at {where} ({MODULES}/{path})"
        for where, path in [
            ("ChromeLauncher.launch", "puppeteer/lib/cjs/puppeteer/node/Launcher.js:105:23"),
            ("PuppeteerNode.launch", "puppeteer/lib/cjs/puppeteer/node/Puppeteer.js:125:31"),
            ("PuppeteerExtra.launch", "puppeteer-extra/dist/index.cjs.js:128:41"),
            ("async Bridge.initBrowser", "wechaty-puppet-wechat/dist/cjs/src/bridge.js:115:23"),
            ("async Bridge.start", "wechaty-puppet-wechat/dist/cjs/src/bridge.js:54:28"),
            (
                "async PuppetWeChat.initBridge",
                "wechaty-puppet-wechat/dist/cjs/src/puppet-wechat.js:205:13",
            ),
            (
                "async PuppetWeChat.onStart",
                "wechaty-puppet-wechat/dist/cjs/src/puppet-wechat.js:98:23",
            ),
            (
                "async PuppetWeChat.start",
                "state-switch/dist/cjs/src/service-ctl/service-ctl.js:65:17",
            ),
            (
                "async PuppetWeChat.start",
                "wechaty-puppet/dist/cjs/src/mixins/service-mixin.js:21:13",
            ),
            ("async PuppetWeChat.start", "wechaty-puppet/dist/cjs/src/mixins/ready-mixin.js:16:13"),
        ]
    )
)
#: the same host with network cut: the browser started, the login page did not load
NO_NETWORK = (
    "UNKNOWN: Error: net::ERR_NAME_NOT_RESOLVED at https://wx.qq.com\n"
    f"    at navigate ({MODULES}/puppeteer/lib/cjs/puppeteer/common/FrameManager.js:156:23)"
)
ONE_LINE = (
    "wechaty-puppet-wechat found no Chromium or Chrome: install Debian's chromium "
    "(apt install chromium), or set puppetOptions.endpoint to the browser's path"
)


def test_the_no_browser_error_becomes_one_line_that_says_what_to_do() -> None:
    assert len(NO_BROWSER.splitlines()) == 11
    said = explain_puppet_error("wechaty-puppet-wechat", NO_BROWSER)
    assert said == ONE_LINE
    assert "npm install" not in said  # puppeteer's advice: install scripts never run


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (
            "Error: Tried to use PUPPETEER_EXECUTABLE_PATH env variable to launch browser but "
            "did not find any executable at: /opt/chrome\n    at resolveExecutablePath",
            "wechaty-puppet-wechat found no browser at /opt/chrome: install Debian's chromium "
            "(apt install chromium), or set puppetOptions.endpoint to the browser's path",
        ),
        (
            "Error: Failed to launch the browser process! spawn /usr/bin/chromum ENOENT\n\n\n"
            "TROUBLESHOOTING: https://github.com/puppeteer/puppeteer/blob/main/docs/"
            "troubleshooting.md",
            "wechaty-puppet-wechat found no browser at /usr/bin/chromum: install Debian's "
            "chromium (apt install chromium), or set puppetOptions.endpoint to the browser's path",
        ),
        (
            "Error: Failed to launch the browser process!\n"
            "error while loading shared libraries: libnss3.so: cannot open shared object file\n"
            "\n\nTROUBLESHOOTING: https://github.com/puppeteer/puppeteer/blob/main/docs/"
            "troubleshooting.md\n    at onClose (x.js:1:1)",
            "wechaty-puppet-wechat could not start the browser (error while loading shared "
            "libraries: libnss3.so: cannot open shared object file): check "
            "puppetOptions.endpoint; --log-level debug shows the browser's own output",
        ),
        (
            NO_NETWORK,
            "wechaty-puppet-wechat could not open https://wx.qq.com (net::ERR_NAME_NOT_RESOLVED): "
            "the gateway's host must reach WeChat's web login page",
        ),
    ],
)
def test_other_browser_errors_are_one_line_too(node: str, expected: str) -> None:
    assert explain_puppet_error("wechaty-puppet-wechat", node) == expected


def test_an_unknown_error_is_left_as_it_is() -> None:
    assert explain_puppet_error("wechaty-puppet-wechat", "UNKNOWN: Error: boom\n  at x") is None


# ---------------------------------------------------------------- finding the browser


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def no_system_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the PATH given to the function counts (not this host's /usr/bin)."""
    monkeypatch.setattr(sidecar_module, "_BROWSER_DIRS", ())


@pytest.mark.usefixtures("no_system_dirs")
@pytest.mark.parametrize("name", ["chromium", "chromium-browser", "google-chrome"])
def test_the_system_browser_is_found_on_path(tmp_path: Path, name: str) -> None:
    browser = executable(tmp_path / "bin" / name)
    env = {"PATH": str(tmp_path / "bin")}
    assert find_browser(env) == str(browser)
    assert browser_options("wechaty-puppet-wechat", {"uos": True}, env) == {
        "uos": True,
        "endpoint": str(browser),
    }


@pytest.mark.usefixtures("no_system_dirs")
def test_puppeteer_executable_path_comes_first(tmp_path: Path) -> None:
    executable(tmp_path / "bin" / "chromium")
    env = {"PATH": str(tmp_path / "bin"), "PUPPETEER_EXECUTABLE_PATH": "/opt/chrome/chrome"}
    assert browser_options("wechaty-puppet-wechat", {}, env) == {"endpoint": "/opt/chrome/chrome"}


@pytest.mark.usefixtures("no_system_dirs")
@pytest.mark.parametrize(
    ("puppet", "options", "env"),
    [
        ("wechaty-puppet-wechat", {"endpoint": "/opt/mine"}, {}),
        ("wechaty-puppet-wechat", {"launchOptions": {"executablePath": "/opt/mine"}}, {}),
        ("wechaty-puppet-wechat", {}, {"WECHATY_PUPPET_WECHAT_ENDPOINT": "/opt/mine"}),
        ("wechaty-puppet-wechat4u", {}, {}),  # no browser: endpoint means something else
    ],
)
def test_a_chosen_browser_or_another_puppet_is_left_alone(
    tmp_path: Path, puppet: str, options: dict[str, Any], env: dict[str, str]
) -> None:
    executable(tmp_path / "bin" / "chromium")
    assert browser_options(puppet, options, {"PATH": str(tmp_path / "bin"), **env}) is options


@pytest.mark.usefixtures("no_system_dirs")
def test_no_browser_leaves_the_options_as_they_are(tmp_path: Path) -> None:
    assert find_browser({"PATH": str(tmp_path)}) is None
    options = {"uos": True}
    assert browser_options("wechaty-puppet-wechat", options, {"PATH": str(tmp_path)}) is options


def test_a_short_path_still_finds_the_usual_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser = executable(tmp_path / "usr-bin" / "chromium")
    monkeypatch.setattr(sidecar_module, "_BROWSER_DIRS", (str(tmp_path / "usr-bin"),))
    assert find_browser({"PATH": str(tmp_path / "empty")}) == str(browser)


# ---------------------------------------------------------------- through the gateway


class NewSidecar(Exception):
    """A new sidecar would start here."""


class RunningSidecar(Sidecar):
    """A sidecar taken as running, with no process behind it."""

    stops = 0

    @property
    def running(self) -> bool:
        return self.stops == 0

    async def stop(self) -> None:
        self.stops += 1

    async def start(self) -> Any:
        raise NewSidecar


class FailingClient:
    """The Puppet Service client, whose Start got the puppet's error."""

    def __init__(self, message: str) -> None:
        self.message = message

    async def start(self) -> None:
        raise PuppetError(self.message)

    async def stop(self) -> None:
        return None


def sidecar_puppet(tmp_path: Path, message: str) -> tuple[SidecarPuppet, RunningSidecar]:
    sidecar = RunningSidecar(
        puppet="wechaty-puppet-wechat", state_dir=tmp_path, account_dir=tmp_path / "a"
    )
    puppet = SidecarPuppet(sidecar)
    puppet.client = FailingClient(message)  # type: ignore[assignment]
    return puppet, sidecar


async def test_start_raises_the_one_line_error(tmp_path: Path) -> None:
    puppet, sidecar = sidecar_puppet(tmp_path, NO_BROWSER)
    with pytest.raises(SidecarError) as raised:
        await puppet.start()
    assert str(raised.value) == ONE_LINE
    assert isinstance(raised.value.__cause__, PuppetError)  # the whole of it, for the log
    assert sidecar.stops == 0


async def test_a_browser_installed_meanwhile_gets_a_new_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sidecar_module, "find_browser", lambda env=None: None)
    puppet, sidecar = sidecar_puppet(tmp_path, NO_BROWSER)
    with pytest.raises(SidecarError):
        await puppet.start()
    # still no browser: the same sidecar is asked again (no restart per attempt)
    with pytest.raises(SidecarError):
        await puppet.start()
    assert sidecar.stops == 0
    # `apt install chromium` meanwhile: only a new sidecar can hand it to the puppet
    monkeypatch.setattr(sidecar_module, "find_browser", lambda env=None: "/usr/bin/chromium")
    with pytest.raises(NewSidecar):
        await puppet.start()
    assert sidecar.stops >= 1


async def test_start_passes_an_unknown_error_on_unchanged(tmp_path: Path) -> None:
    puppet, sidecar = sidecar_puppet(tmp_path, "UNKNOWN: Error: boom\n    at x")
    with pytest.raises(PuppetError, match=r"^UNKNOWN: Error: boom\n    at x$") as raised:
        await puppet.start()
    assert not isinstance(raised.value, SidecarError)
    assert sidecar.stops == 0


async def test_the_gateway_logs_and_shows_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    puppet, _sidecar = sidecar_puppet(tmp_path, NO_BROWSER)
    config = parse_config(json.dumps({"channels": {"wechat": {"puppet": "wechaty-puppet-wechat"}}}))

    async def agent(turn: object) -> None:
        return None

    gateway = Gateway(
        config,
        agent=agent,
        puppet_factory=lambda account: puppet,
        state_dir=tmp_path / "state",
        show_terminal_qr=False,
    )
    caplog.set_level(logging.DEBUG, logger="wechat_sdk")  # whatever an earlier test set
    await gateway.start()
    try:
        for _ in range(200):
            if last_error := gateway.status()[0].last_error:
                break
            await asyncio.sleep(0.01)
    finally:
        await gateway.close()
    assert last_error == f"SidecarError: {ONE_LINE}"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"puppet error: {ONE_LINE}" in warnings
    # the puppet's own words stay in the log, at debug level
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert f"wechaty-puppet-wechat said: {NO_BROWSER}" in said


def test_this_host_finds_debians_chromium() -> None:
    """On a host with Debian's chromium installed (as the docs say), it is the one found."""
    if not os.access("/usr/bin/chromium", os.X_OK):
        pytest.skip("Debian's chromium is not installed here")
    env = {k: v for k, v in os.environ.items() if k != "PUPPETEER_EXECUTABLE_PATH"}
    assert find_browser(env) in ("/usr/bin/chromium", "/bin/chromium")


# ---------------------------------------------------------------- the docs' configs

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "config"


def sidecar_of(example: str, state_dir: Path) -> Sidecar:
    from wechat_sdk.adapters.wechaty.service import make_puppet
    from wechat_sdk.config import accounts_of, load_config

    puppet = make_puppet(accounts_of(load_config(EXAMPLES / example)).default, state_dir)
    assert isinstance(puppet, SidecarPuppet)
    return puppet.sidecar


@pytest.mark.usefixtures("no_system_dirs")
def test_the_going_live_config_gets_the_system_browser(tmp_path: Path) -> None:
    sidecar = sidecar_of("going-live-wechat.json5", tmp_path)
    assert "endpoint" not in sidecar.puppet_options  # nothing to set by hand
    browser = executable(tmp_path / "bin" / "chromium")
    env = {"PATH": str(tmp_path / "bin")}
    chosen = browser_options(sidecar.puppet, sidecar.puppet_options, env)
    assert chosen["endpoint"] == str(browser)


@pytest.mark.usefixtures("no_system_dirs")
def test_the_browser_example_chooses_its_own(tmp_path: Path) -> None:
    sidecar = sidecar_of("puppet-node-browser.json5", tmp_path)
    assert sidecar.puppet_options == {"endpoint": "/usr/bin/chromium"}
    executable(tmp_path / "bin" / "chromium")
    env = {"PATH": str(tmp_path / "bin")}
    assert browser_options(sidecar.puppet, sidecar.puppet_options, env) is sidecar.puppet_options
