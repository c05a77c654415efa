"""Test sessions. `python3 -m nox` runs them all (the README's test command)."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests", "e2e", "docs", "browser"]

PY = "3.11"


@nox.session(python=PY)
def tests(session: nox.Session) -> None:
    """pytest: unit, scenario and adapter tests (the simulator; no Node needed). The Redis
    store's tests start their own redis-server, and the sidecar's browser tests drive
    Chromium (Debian's, each installed here when missing)."""
    _redis_server(session)
    _chromium(session)  # (the sidecar's browser tests drive it)
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--ignore=tests/e2e",
        *session.posargs,
        env={"WECHAT_SDK_REDIS_REQUIRED": "1"},
    )


def _redis_server(session: nox.Session) -> None:
    """Debian's redis-server on the PATH, installed with apt-get when missing (as root):
    the tests start their own server from it (tests/conftest.py)."""
    if shutil.which("redis-server") is not None:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        session.error(
            "redis-server is missing. Install Debian's package as root: "
            "apt-get update && apt-get install -y redis-server"
        )
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", external=True, env=env)
    session.run(
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
        "redis-server",
        external=True,
        env=env,
    )
    if shutil.which("redis-server") is None:
        session.error("apt-get installed redis-server but it is not on the PATH")


@nox.session(python=PY)
def e2e(session: nox.Session) -> None:
    """End to end on the real Node Puppet Service with wechaty-puppet-mock, plaintext and TLS.

    Needs Node.js and npm; the sidecar's npm packages are installed from the lock file in
    wechat_sdk/adapters/wechaty/node/ into build/node-cache on the first run. So is
    Tencent's iLink client with its openclaw peer and Node 22 (tests/e2e/ilink_client/, npm
    ci, about a minute and 1.1 GB the first time), which runs against
    ``wechat-sdk simulator serve``. The assistant's scenarios run a real MCP server from
    PyPI, mcp-server-time (its last releases on mcp 1.x).
    """
    _chromium(session)  # (wechaty-puppet-wechat's tests drive it)
    session.install("-e", ".[test]", "mcp-server-time>=2026.1.26,<2026.9")
    session.run(
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/e2e",
        *session.posargs,
        env={
            "WECHAT_SDK_E2E_REQUIRED": "1",
            "WECHAT_SDK_NODE_CACHE": "build/node-cache",
        },
    )


@nox.session(python=PY)
def protos(session: nox.Session) -> None:
    """Regenerate the gRPC stubs from wechat_sdk/adapters/wechaty/_proto/puppet.proto."""
    session.install("-e", ".[protos]")
    session.run("python", "-m", "wechat_sdk.adapters.wechaty.protos")


@nox.session(python=PY)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6,<1")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PY)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on both packages."""
    session.install("-e", ".[typecheck]")
    session.run("mypy", "--strict", "-p", "wechat_sdk", "-p", "simulator")


@nox.session(python=PY)
def docs(session: nox.Session) -> None:
    """mkdocs build --strict (the configuration reference is generated from the models)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "build/site")


CHROMIUM = "/usr/bin/chromium"


def _chromium(session: nox.Session) -> str:
    """Debian's chromium, installed with apt-get when missing and running as root."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        session.error(
            f"Chromium is missing ({CHROMIUM}). Install Debian's package as root: "
            "apt-get update && apt-get install -y chromium"
        )
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", external=True, env=env)
    session.run("apt-get", "install", "-y", "chromium", external=True, env=env)
    if not os.path.exists(CHROMIUM):
        session.error(f"apt-get installed chromium but {CHROMIUM} is not there")
    return CHROMIUM


@nox.session(python=PY)
def browser(session: nox.Session) -> None:
    """The built site in headless Chromium: page errors, links and anchors, search, screenshots."""
    chromium = _chromium(session)
    session.install("-e", ".[docs,browser]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "build/site")
    session.run(
        "python",
        "tests/browser/check_site.py",
        "--site",
        "build/site",
        "--chromium",
        chromium,
        "--screenshots",
        "build/screenshots",
    )
