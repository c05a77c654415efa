"""The Node sidecar: any Wechaty puppet served over Puppet Service on 127.0.0.1.

``puppet: "wechaty-puppet-wechat"`` (or any other Node puppet package) starts the
project's own small Node program (``node/sidecar.cjs``) around that puppet, with
``PuppetServer`` from ``wechaty-puppet-service``, a random ``insecure_`` token and a free
loopback port, and connects to it like to any Puppet Service.

The npm packages are installed on first use into a cache under the state directory
(:mod:`~wechat_sdk.adapters.wechaty.node_install`: ``<stateDir>/node/<hash of the lock
file>/``, pinned by the lock file shipped in the package). The puppet's login state
(Wechaty's memory card) is kept per account in ``<stateDir>/accounts/<id>/``, and with a
Redis store in Redis too (:mod:`~wechat_sdk.adapters.wechaty.memory_card`: restored before
the sidecar starts, saved as it changes), so another gateway resumes the session.

The sidecar never outlives the gateway: it exits when its stdin closes (the gateway
stopped or died) and, on Linux, the kernel kills it when the gateway's process dies
(``PR_SET_PDEATHSIG``). The files Puppet Service passes on (file-box's registry) are kept
in the account's directory, not the system's temp dir, emptied at each start and stop
(:attr:`Sidecar.file_box_dir`): killed sidecars leave nothing in /tmp, and nothing piles up.

``wechaty-puppet-wechat`` drives a Chromium through puppeteer, and since install scripts
do not run, puppeteer never downloads one: without ``puppetOptions.endpoint`` (the
browser's path) the sidecar gives it the system's browser (:func:`find_browser`). A
puppet's error that is known to mean something simple (no browser, no network) becomes one
line that says what to do (:func:`explain_puppet_error`); the whole of it is logged at
debug level.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wechat_sdk.adapters.wechaty.client import (
    WECHATY_ROOT_CA,
    PuppetServiceClient,
    ServiceConnection,
)
from wechat_sdk.adapters.wechaty.node_install import (
    LOCKED_PACKAGES,
    SIDECAR_DIR,
    SidecarError,
    ensure_installed,
    node_cache_dir,
    require_tool,
)
from wechat_sdk.capabilities import CAPABILITIES, Capabilities
from wechat_sdk.puppet import (
    Contact,
    Message,
    OutboundFile,
    PuppetError,
    PuppetEvent,
    ReplyWindow,
    Room,
)

if TYPE_CHECKING:
    from wechat_sdk.adapters.wechaty.memory_card import RedisMemoryCard

__all__ = [
    "BROWSER_PUPPETS",
    "LOCKED_PACKAGES",
    "Sidecar",
    "SidecarError",
    "SidecarPuppet",
    "browser_options",
    "ensure_installed",
    "explain_puppet_error",
    "find_browser",
    "node_cache_dir",  # (with ensure_installed, LOCKED_PACKAGES, SidecarError: node_install's)
]

log = logging.getLogger("wechat_sdk.adapters.wechaty")

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 8.0


#: Node puppets that drive a Chromium through puppeteer (their ``endpoint`` is its path)
BROWSER_PUPPETS: frozenset[str] = frozenset({"wechaty-puppet-wechat", "wechaty-puppet-puppeteer"})
#: what a system's Chromium or Chrome is called on PATH (Debian's package: chromium)
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_BROWSER_DIRS = ("/usr/bin", "/usr/local/bin")  # when PATH is short (systemd, cron)
_BROWSER_ENDPOINT_ENV = ("WECHATY_PUPPET_WECHAT_ENDPOINT", "WECHATY_PUPPET_PUPPETEER_ENDPOINT")


def find_browser(env: Mapping[str, str] | None = None) -> str | None:
    """The system's Chromium or Chrome: ``$PUPPETEER_EXECUTABLE_PATH``, else on PATH."""
    env = os.environ if env is None else env
    chosen = env.get("PUPPETEER_EXECUTABLE_PATH")
    if chosen:
        return chosen
    path = os.pathsep.join([env.get("PATH", os.defpath), *_BROWSER_DIRS])
    for name in BROWSER_NAMES:
        found = shutil.which(name, path=path)
        if found is not None:
            return found
    return None


def browser_options(
    puppet: str, options: dict[str, Any], env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``options`` with ``endpoint`` set to the system's browser, for a puppet that drives one.

    Only when nothing chose a browser yet: ``endpoint``, ``launchOptions.executablePath``
    or the puppet's own environment variable. Unchanged when no browser is found (the
    puppet's error then says so, see :func:`explain_puppet_error`).
    """
    env = os.environ if env is None else env
    if puppet not in BROWSER_PUPPETS or options.get("endpoint"):
        return options
    launch = options.get("launchOptions")
    if isinstance(launch, dict) and launch.get("executablePath"):
        return options
    if any(env.get(name) for name in _BROWSER_ENDPOINT_ENV):
        return options
    browser = find_browser(env)
    return options if browser is None else {**options, "endpoint": browser}


_NO_BROWSER = re.compile(
    r"Could not find expected browser|Could not find Chrom"
    r"|did not find any executable at: (?P<env>\S+)"  # $PUPPETEER_EXECUTABLE_PATH
    r"|Failed to launch the browser process! spawn (?P<path>\S+) ENOENT"
    r"|Browser was not found at the configured executablePath \((?P<configured>[^)]+)\)"
)
_NO_LAUNCH = re.compile(r"Failed to launch the browser process!(?P<why>.*(?:\n.*){0,3})")
_NO_PAGE = re.compile(r"(?P<code>net::ERR_[A-Z_]+) at (?P<url>\S+)")


def explain_puppet_error(puppet: str, message: str) -> str | None:
    """One line that says what to do about a puppet's known error, or None.

    ``message`` is what the puppet said, often a Node stack; the errors known here are
    puppeteer's (no browser, a browser that does not start) and a page that cannot load.
    """
    if (m := _NO_BROWSER.search(message)) is not None:
        where = m["env"] or m["path"] or m["configured"]
        if where:
            return (
                f"{puppet} found no browser at {where}: install Debian's chromium "
                "(apt install chromium), or set puppetOptions.endpoint to the browser's path"
            )
        return (
            f"{puppet} found no Chromium or Chrome: install Debian's chromium "
            "(apt install chromium), or set puppetOptions.endpoint to the browser's path"
        )
    if (m := _NO_LAUNCH.search(message)) is not None:
        why = " ".join(line.strip() for line in m["why"].splitlines() if line.strip())
        return (
            f"{puppet} could not start the browser ({why[:200] or 'no reason given'}): "
            "check puppetOptions.endpoint; --log-level debug shows the browser's own output"
        )
    if (m := _NO_PAGE.search(message)) is not None:
        return (
            f"{puppet} could not open {m['url']} ({m['code']}): the gateway's host must "
            "reach WeChat's web login page"
        )
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Sidecar:
    """One Node sidecar process serving ``puppet``."""

    puppet: str
    state_dir: Path
    account_dir: Path
    puppet_options: dict[str, Any] = field(default_factory=dict)
    tls: bool = False
    test_control: bool = False
    want_port: int | None = None  # a fixed port (default: a free one)
    want_token: str | None = None  # a fixed token (default: a new random insecure_ one)
    account_id: str = "-"  # the account it serves, on its log lines
    process: asyncio.subprocess.Process | None = None
    port: int | None = None
    control_port: int | None = None
    token: str = ""
    #: the browser the sidecar gave the puppet (:func:`browser_options`), if it chose one
    browser: str | None = None
    #: the memory card's copy in Redis (a Redis store), else None (the file alone)
    memory_card: RedisMemoryCard | None = None
    _stderr_task: asyncio.Task[None] | None = None
    _card_task: asyncio.Task[None] | None = None

    @property
    def _log(self) -> logging.LoggerAdapter[logging.Logger]:
        return logging.LoggerAdapter(log, {"account": self.account_id})

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def file_box_dir(self) -> Path:
        """Where the sidecar keeps the files Puppet Service passes on (file-box's registry).

        By default file-box keeps them in ``file-box-urn-registry.<pid>`` in the system's
        temp dir, which only a clean exit removes: every killed sidecar left one there. Here
        it is emptied before each start (what a killed gateway's sidecar left) and after
        each stop (a killed sidecar's).
        """
        return self.account_dir / "file-box"

    async def _empty_file_box_dir(self) -> None:
        await asyncio.to_thread(shutil.rmtree, self.file_box_dir, ignore_errors=True)

    async def start(self) -> ServiceConnection:
        modules = await ensure_installed(
            node_cache_dir(self.state_dir), self.puppet, logger=self._log
        )
        node = require_tool("node")
        await asyncio.to_thread(self.account_dir.mkdir, parents=True, exist_ok=True, mode=0o700)
        await self._empty_file_box_dir()
        if self.memory_card is not None:  # the session another gateway saved, if one did
            await self.memory_card.restore()
        self.token = self.want_token or f"insecure_{secrets.token_hex(16)}"
        options = browser_options(self.puppet, self.puppet_options)
        browser = self._chosen_browser(options)
        if browser != self.browser and browser is not None:
            self._log.info(
                "%s drives the browser %s (puppetOptions.endpoint chooses another)",
                self.puppet,
                browser,
            )
        self.browser = browser
        last_error = ""
        for attempt in range(3):  # a port taken between choosing and binding: try another
            self.port = self.want_port if self.want_port and attempt == 0 else _free_port()
            env = {
                **os.environ,
                "NODE_PATH": str(modules),
                "WECHAT_SDK_PUPPET": self.puppet,
                "WECHAT_SDK_PUPPET_OPTIONS": json.dumps(options),
                "WECHAT_SDK_PORT": str(self.port),
                "WECHAT_SDK_TOKEN": self.token,
                "WECHAT_SDK_TLS": "1" if self.tls else "0",
                "WECHAT_SDK_MEMORY": str(self.account_dir / "wechaty"),
                "WECHAT_SDK_FILE_BOX_DIR": str(self.file_box_dir),
                "WECHAT_SDK_TEST_CONTROL": "1" if self.test_control else "0",
            }
            script = SIDECAR_DIR / "sidecar.cjs"
            self.process = await asyncio.create_subprocess_exec(
                node,
                str(script),
                cwd=self.account_dir,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                preexec_fn=_die_with_parent,
            )
            self._stderr_task = asyncio.get_running_loop().create_task(self._log_stderr())
            try:
                hello = await asyncio.wait_for(self._hello(), START_TIMEOUT_S)
            except TimeoutError:
                await self.stop()
                raise SidecarError(
                    f"the Node sidecar for {self.puppet} did not start within "
                    f"{START_TIMEOUT_S:.0f} s"
                ) from None
            if hello.get("event") == "listening":
                self.control_port = hello.get("control")
                if self.memory_card is not None:
                    self._card_task = asyncio.get_running_loop().create_task(
                        self.memory_card.keep(), name=f"memory-card:{self.account_id}"
                    )
                self._log.info(
                    "Node sidecar for %s listening on 127.0.0.1:%d (pid %d)",
                    self.puppet,
                    self.port,
                    self.process.pid,
                )
                return ServiceConnection(
                    endpoint=f"127.0.0.1:{self.port}",
                    token=self.token,
                    tls=self.tls,
                    ca_file=WECHATY_ROOT_CA if self.tls else None,
                    server_name="insecure",
                )
            last_error = str(hello.get("message", "the sidecar exited"))
            await self.stop()
            if "EADDRINUSE" not in last_error:
                break
        raise SidecarError(f"the Node sidecar for {self.puppet} failed to start: {last_error}")

    def _chosen_browser(self, options: dict[str, Any]) -> str | None:
        """The browser :func:`browser_options` added to the options (None: it added none)."""
        if options is self.puppet_options:
            return None
        browser: str = options["endpoint"]
        return browser

    def browser_changed(self) -> bool:
        """Whether a new sidecar would give the puppet another browser than this one did."""
        now = self._chosen_browser(browser_options(self.puppet, self.puppet_options))
        return now != self.browser

    async def _hello(self) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                await self.process.wait()
                return {"event": "error", "message": f"exited with code {self.process.returncode}"}
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(msg, dict) and msg.get("event") in ("listening", "error"):
                return msg

    async def _log_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        while line := await self.process.stderr.readline():
            text = line.decode("utf-8", "replace").rstrip()
            if text and "insecure_" not in text:  # never echo anything token-like
                self._log.debug("sidecar: %s", text)

    async def stop(self) -> None:
        """Stop the process: close its stdin, then SIGTERM, then SIGKILL."""
        proc = self.process
        if proc is None:
            return
        if proc.returncode is None:
            if proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        await self._empty_file_box_dir()
        if self._stderr_task is not None:
            self._stderr_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._stderr_task
            self._stderr_task = None
        if self._card_task is not None:
            self._card_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._card_task
            self._card_task = None
        if self.memory_card is not None:  # as the sidecar saved it when it stopped
            await self.memory_card.save()

    async def close(self) -> None:
        """Stop the process and let go of Redis (the memory card's connection)."""
        await self.stop()
        if self.memory_card is not None:
            await self.memory_card.close()


class SidecarPuppet:
    """The Puppet port on a Node sidecar: starts the sidecar, then speaks Puppet Service.

    :meth:`stop` only detaches (the runner stops and starts again to reconnect); the
    process ends with :meth:`close`, when the account stops for good. When the sidecar
    died, :meth:`start` starts a new one.
    """

    def __init__(self, sidecar: Sidecar, *, account_id: str = "default", **client: Any) -> None:
        self.sidecar = sidecar
        self.account_id = account_id
        self._log = logging.LoggerAdapter(log, {"account": account_id})
        self._client_options = client
        self.client: PuppetServiceClient | None = None
        self._no_browser = False  # the last start failed for want of a browser

    @property
    def self_id(self) -> str | None:
        return self.client.self_id if self.client is not None else None

    def _c(self) -> PuppetServiceClient:
        if self.client is None:
            raise PuppetError("the puppet is not started")
        return self.client

    async def start(self) -> None:
        if self._no_browser and self.sidecar.running and self.sidecar.browser_changed():
            # a browser was installed since: only a new sidecar can give it to the puppet
            await self.sidecar.stop()
        self._no_browser = False
        if not self.sidecar.running:
            await self.sidecar.stop()
            connection = await self.sidecar.start()
            if self.client is not None:
                await self.client.stop()
            self.client = PuppetServiceClient(
                connection, account_id=self.account_id, **self._client_options
            )
        try:
            await self._c().start()
        except PuppetError as exc:
            said = str(exc)
            explained = explain_puppet_error(self.sidecar.puppet, said)
            if explained is None:
                raise
            self._log.debug("%s said: %s", self.sidecar.puppet, said)
            self._no_browser = _NO_BROWSER.search(said) is not None
            raise SidecarError(explained) from exc

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.stop()

    async def close(self) -> None:
        await self.stop()
        await self.sidecar.close()

    def events(self) -> AsyncIterator[PuppetEvent]:
        return self._c().events()

    async def message(self, message_id: str) -> Message:
        return await self._c().message(message_id)

    async def contact(self, contact_id: str) -> Contact:
        return await self._c().contact(contact_id)

    async def room(self, room_id: str) -> Room:
        return await self._c().room(room_id)

    async def room_alias(self, room_id: str, contact_id: str) -> str | None:
        return await self._c().room_alias(room_id, contact_id)

    async def send_text(
        self, conversation_id: str, text: str, mention_ids: tuple[str, ...] = ()
    ) -> str | None:
        return await self._c().send_text(conversation_id, text, mention_ids)

    async def send_file(self, conversation_id: str, file: OutboundFile) -> str | None:
        return await self._c().send_file(conversation_id, file)

    def download(self, message_id: str, max_bytes: int) -> AsyncIterator[bytes]:
        return self._c().download(message_id, max_bytes)

    async def logout(self) -> None:
        await self._c().logout()

    # ------------------------------------------------------------ transport

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    async def set_typing(self, conversation_id: str, typing: bool) -> None:
        """Wechaty has no typing indicator: nothing to do."""

    def reply_window(self, conversation_id: str) -> ReplyWindow | None:
        return None  # Wechaty has no reply window
