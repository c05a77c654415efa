"""The control socket stays quiet and bounded whatever its clients do: a client that closes
without a request leaves no error in the log, an idle one is hung up on, and only so many
are served at once."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from wechat_sdk.gateway.control import ControlServer


async def handle(request: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "echo": request.get("cmd")}


@pytest.fixture
def short_dir() -> Any:
    # a Unix socket path must be short (about 100 bytes): pytest's tmp_path may be longer
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ctl") as name:
        yield Path(name)


async def open_client(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_unix_connection(str(path))


async def ask(path: Path, line: bytes) -> bytes:
    reader, writer = await open_client(path)
    writer.write(line)
    await writer.drain()
    answer = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return answer


async def test_clients_that_connect_and_close_leave_no_error(
    short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = ControlServer(short_dir, handle)
    await server.start()
    try:
        with caplog.at_level(logging.DEBUG):
            for _ in range(20):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.connect(str(server.path))
            # a client that sends half a line and goes, and one that resets the connection
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(str(server.path))
                s.sendall(b'{"cmd": "sta')
            await asyncio.sleep(0.1)  # the server reads their ends (no client is waiting)
            # the server is still there and answers
            assert b'"echo": "status"' in await ask(server.path, b'{"cmd": "status"}\n')
            await asyncio.sleep(0.05)  # let the served connections finish
    finally:
        await server.stop()
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [], [r.getMessage() for r in errors]


async def test_an_idle_client_is_hung_up_on(short_dir: Path) -> None:
    server = ControlServer(short_dir, handle, idle_timeout_s=0.2)
    await server.start()
    try:
        reader, writer = await open_client(server.path)
        # says nothing: the server closes the connection (the read would hang otherwise)
        rest = await asyncio.wait_for(reader.read(), timeout=30)
        assert b"no request within" in rest  # then the end of the stream
        assert reader.at_eof()
        writer.close()
    finally:
        await server.stop()


async def test_only_so_many_clients_are_served_at_once(short_dir: Path) -> None:
    server = ControlServer(short_dir, handle, max_clients=4)
    await server.start()
    try:
        idle = [await open_client(server.path) for _ in range(4)]
        await asyncio.sleep(0.05)
        # the fifth is turned away at once, with an answer that says why
        reader, writer = await open_client(server.path)
        answer = await asyncio.wait_for(reader.read(), timeout=30)
        assert b"busy" in answer
        writer.close()
        # when the idle ones go, requests are answered again
        for _, w in idle:
            w.close()
        await asyncio.sleep(0.05)
        assert b'"ok": true' in await ask(server.path, b'{"cmd": "status"}\n')
    finally:
        await server.stop()
