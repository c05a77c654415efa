"""The Node sidecar's npm packages: installed once per lock file, into a cache.

The packages (``wechaty-puppet-service`` and the puppets wechat-sdk pins) are installed on
first use into ``<stateDir>/node/npm-<hash of the lock file>/`` (``$WECHAT_SDK_NODE_CACHE``
chooses another root) with ``npm install --ignore-scripts`` from the lock file shipped in
the package, so the versions are pinned; a file lock serialises accounts starting at once.
A puppet the lock file does not pin is installed at its latest version, with a warning.
Starting and supervising the sidecar process is :mod:`wechat_sdk.adapters.wechaty.sidecar`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
from importlib import resources
from pathlib import Path
from typing import IO, Any

from wechat_sdk.puppet import PuppetError

__all__ = [
    "LOCKED_PACKAGES",
    "NODE_MAJOR_MIN",
    "SIDECAR_DIR",
    "SidecarError",
    "check_node_version",
    "ensure_installed",
    "node_cache_dir",
    "require_tool",
]

log = logging.getLogger("wechat_sdk.adapters.wechaty")

SIDECAR_DIR = resources.files("wechat_sdk.adapters.wechaty") / "node"
INSTALLED_MARK = ".wechat-sdk-installed"


class SidecarError(PuppetError):
    """The sidecar could not be installed or started; the message says what to do."""


def _package_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SIDECAR_DIR / "package.json").read_text("utf-8"))
    return data


#: The npm packages the lock file pins (the sidecar's own dependencies).
LOCKED_PACKAGES: frozenset[str] = frozenset(_package_json()["dependencies"])


def node_cache_dir(state_dir: Path) -> Path:
    """Where the sidecar's npm packages live: one directory per lock file version."""
    override = os.environ.get("WECHAT_SDK_NODE_CACHE")
    root = Path(override).expanduser() if override else state_dir / "node"
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((SIDECAR_DIR / name).read_bytes())
    return (root / f"npm-{digest.hexdigest()[:12]}").resolve()


NODE_MAJOR_MIN = 18


def require_tool(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SidecarError(
            f"{tool} is not installed, and the Node sidecar needs Node.js 18+ with npm to run a "
            'Wechaty puppet: install them (Debian: "apt install nodejs npm"), or connect to '
            'a running Puppet Service with puppet "wechaty-puppet-service" and a token'
        )
    return path


async def ensure_installed(
    cache_dir: Path,
    puppet: str,
    *,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = log,
) -> Path:
    """Install the sidecar's npm packages (and ``puppet``) into ``cache_dir`` once.

    Safe when several accounts start at once: installs are serialised by a file lock.
    Returns the ``node_modules`` directory. ``logger``: the sidecar's, naming its account.
    """
    npm = require_tool("npm")
    await check_node_version(require_tool("node"))
    lock = await asyncio.to_thread(_lock_cache, cache_dir)
    try:
        if not await asyncio.to_thread(_copy_lock_files, cache_dir):
            logger.info("installing the Node sidecar's npm packages into %s", cache_dir)
            await _npm(npm, cache_dir, [])
            await asyncio.to_thread((cache_dir / INSTALLED_MARK).write_text, "ok\n")
        modules = cache_dir / "node_modules"
        if puppet not in LOCKED_PACKAGES and not await asyncio.to_thread((modules / puppet).is_dir):
            logger.warning(
                "puppet %s is not pinned by wechat-sdk's lock file: installing its latest "
                "version from the npm registry",
                puppet,
            )
            await _npm(npm, cache_dir, [puppet])
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    return modules


async def check_node_version(node: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        node, "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await proc.communicate()
    version = out.decode().strip()  # "v20.20.2"
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        raise SidecarError(f"cannot read the version of {node} ({version!r})") from None
    if major < NODE_MAJOR_MIN:
        raise SidecarError(
            f"Node.js {version} is too old: the Node sidecar needs Node.js {NODE_MAJOR_MIN}+ "
            f"({node})"
        )


def _lock_cache(cache_dir: Path) -> IO[str]:
    """Create ``cache_dir`` and hold its install lock (blocking)."""
    cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = (cache_dir / ".install.lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def _copy_lock_files(cache_dir: Path) -> bool:
    """True when installed already; otherwise put package.json and the lock file in place."""
    if (cache_dir / INSTALLED_MARK).exists():
        return True
    for name in ("package.json", "package-lock.json"):
        (cache_dir / name).write_bytes((SIDECAR_DIR / name).read_bytes())
    return False


async def _npm(npm: str, cwd: Path, packages: list[str]) -> None:
    args = [npm, "install", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
    proc = await asyncio.create_subprocess_exec(
        *args,
        *packages,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # (its own process group: what it starts goes with it)
    )
    try:
        out, _ = await proc.communicate()
    except BaseException:  # a stop (cancelled) while npm runs: npm does not outlive it,
        # nor does anything it started (a launcher's node, a git)
        # (PermissionError: macOS says so of a group left with zombies only)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    if proc.returncode != 0:
        tail = out.decode("utf-8", "replace").strip().splitlines()[-15:]
        what = " ".join(packages) or "the sidecar's packages"
        raise SidecarError(
            f"npm install of {what} failed in {cwd} (exit {proc.returncode}); is the npm "
            "registry reachable? npm said:\n  " + "\n  ".join(tail)
        )
