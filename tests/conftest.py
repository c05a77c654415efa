"""Fixtures shared by every test folder: a real redis-server for the Redis store.

``redis_url`` starts one ``redis-server`` per test session on a free port (no
persistence, in a temporary directory) and gives its URL; each test takes its own key
namespace from ``redis_namespace``, so tests never see each other's keys. Without a
``redis-server`` on the PATH (Debian: ``apt-get install redis-server``; ``nox -s tests``
installs it) the tests that need it are skipped, saying so, unless
``WECHAT_SDK_REDIS_REQUIRED=1`` (set by nox) makes that a failure.

Also for every test: the ``wechat_sdk`` logger and the libraries' as they were before it
(an in-process ``gateway run`` configures them for stderr, not propagating), and
Hypothesis without its 200 ms deadline per example (a busy machine is no failure; speed
is not what is tested).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

settings.register_profile("wechat-sdk", deadline=None)
settings.load_profile("wechat-sdk")


@pytest.fixture(autouse=True)
def _wechat_sdk_logger_restored() -> Iterator[None]:
    """The ``wechat_sdk`` and ``simulator`` loggers' handlers, level and propagation put
    back after each test, and the libraries' (``configure_logging``, run by an in-process
    ``gateway run``, replaces them)."""
    from wechat_sdk.gateway.service import LIBRARY_LOGGERS, LOGGERS

    loggers = [logging.getLogger(name) for name in (*LOGGERS, *LIBRARY_LOGGERS)]
    saved = [(list(g.handlers), g.level, g.propagate) for g in loggers]
    yield
    for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis_server(
    directory: Path, port: int | None = None, *, appendonly: bool = False
) -> tuple[subprocess.Popen[bytes], int]:
    """A ``redis-server`` on 127.0.0.1 answering PING (persistence off, or with
    ``appendonly`` every write kept in its append-only file in ``directory``), and its
    port (a free one unless given; tried again on another if it was taken meanwhile)."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise FileNotFoundError("redis-server")
    if port is not None:
        return _redis_server(exe, directory, port, appendonly)
    for _ in range(3):
        try:
            return _redis_server(exe, directory, _free_port(), appendonly)
        except RuntimeError as exc:
            error = exc
    raise error


def _redis_server(
    exe: str, directory: Path, port: int, appendonly: bool
) -> tuple[subprocess.Popen[bytes], int]:
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if appendonly else "no",
            "--appendfsync",
            "always",
            "--dir",
            str(directory),
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG") and proc.poll() is None:
                    return proc, port  # (ours: one that lost the port to another has ended)
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"redis-server did not start on port {port}")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of this test session's own redis-server."""
    try:
        proc, port = start_redis_server(tmp_path_factory.mktemp("redis"))
    except FileNotFoundError:
        reason = (
            "redis-server is not installed (apt-get install redis-server; nox -s tests installs it)"
        )
        if os.environ.get("WECHAT_SDK_REDIS_REQUIRED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
async def aclient(redis_url: str) -> AsyncIterator[Any]:
    """An asyncio client (redis.asyncio) of this session's redis-server, as the cluster
    code uses."""
    from redis.asyncio import Redis

    r = Redis.from_url(redis_url, decode_responses=True)
    yield r
    await r.aclose()


@pytest.fixture
def redis_namespace() -> str:
    """A key namespace of this test's own."""
    return f"test-{uuid.uuid4().hex[:12]}"


class RedisServer:
    """A redis-server of one test's own, to stop and start again (on the same port)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        #: every write kept on disk (see keep_data): a restart finds it again
        self.appendonly = False
        self.proc, self.port = start_redis_server(directory)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def keep_data(self) -> None:
        """From now on every write is kept in the append-only file (``appendfsync
        always``), so that :meth:`kill` then :meth:`restart` finds the data again, as a
        production Redis set up as docs/cluster.md says does."""
        self.appendonly = True
        self.proc.kill()
        self.proc.wait()
        self.proc, _ = start_redis_server(self.directory, self.port, appendonly=True)

    def kill(self) -> None:
        """Gone at once (its data with it, unless it keeps it: keep_data)."""
        self.proc.kill()
        self.proc.wait()

    def restart(self) -> None:
        self.proc, _ = start_redis_server(self.directory, self.port, appendonly=self.appendonly)


@pytest.fixture
def own_redis(tmp_path: Path, redis_url: str) -> Iterator[RedisServer]:
    """A redis-server for this test alone (``redis_url`` first: skipped or failed the
    same way when redis-server is missing)."""
    server = RedisServer(tmp_path / "own-redis")
    yield server
    server.kill()


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every fsync (fdatasync) made while the test runs: (the file's path, the calling
    thread)."""
    import threading

    calls: list[tuple[str, int]] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        calls.append((os.readlink(f"/proc/self/fd/{fd}"), threading.get_ident()))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    return calls
