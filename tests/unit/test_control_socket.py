"""The control socket stays quiet and bounded whatever its clients do: a client that closes
without a request leaves no error in the log, an idle one is hung up on, and only so many
are served at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from waiting import until

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


async def test_its_requests_lines_show_no_account_whichever_task_opened_it(
    short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server took the log context of the task that opened it: opened from an
    account's task, each request's lines (a restart's, a status's) showed that account."""
    from wechat_sdk.gateway.runner import ACCOUNT_OF_TASK
    from wechat_sdk.gateway.service import _AccountField

    caplog.handler.addFilter(_AccountField())  # (the gateway's log: each line's account)

    async def logging_handle(request: dict[str, Any]) -> dict[str, Any]:
        logging.getLogger("wechat_sdk.gateway").warning("handled %s", request.get("cmd"))
        return await handle(request)

    server = ControlServer(short_dir, logging_handle)

    async def open_from_an_accounts_task() -> None:
        ACCOUNT_OF_TASK.set("work")
        await server.start()

    await asyncio.get_running_loop().create_task(open_from_an_accounts_task())
    try:
        assert b'"echo": "status"' in await ask(server.path, b'{"cmd": "status"}\n')
    finally:
        await server.stop()
    said = [r for r in caplog.records if r.getMessage() == "handled status"]
    assert [getattr(r, "account", None) for r in said] == ["-"]


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


async def test_a_stop_during_a_restart_waits_for_it_before_closing(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gateway restart`, then a SIGTERM (or `gateway stop`) while the reload runs: the
    gateway closes once the reload ended, never beside it (the reload would start
    accounts on a store the close shuts)."""
    from wechat_sdk.agent import AgentTurn
    from wechat_sdk.gateway import Gateway
    from wechat_sdk.gateway.control import SOCKET_NAME, control_request
    from wechat_sdk.gateway.service import serve

    order: list[str] = []
    reloading, release = asyncio.Event(), asyncio.Event()
    real_close = Gateway.close

    async def slow_reload(self: Gateway, config: Any, grace_s: float = 10.0) -> None:
        order.append("reload")
        reloading.set()
        await release.wait()
        order.append("reloaded")

    async def close(self: Gateway, grace_s: float = 10.0) -> None:
        order.append("close")
        await real_close(self, grace_s)

    monkeypatch.setattr(Gateway, "reload", slow_reload)
    monkeypatch.setattr(Gateway, "close", close)

    async def echo(turn: AgentTurn) -> str:
        return turn.text

    config = short_dir / "config.json5"
    config.write_text('{channels: {wechat: {puppet: "simulator"}}}')
    state = short_dir / "state"
    serving = asyncio.ensure_future(serve(config, state, echo))
    socket_path = state / SOCKET_NAME
    await until("the control socket", socket_path.exists)
    status = await asyncio.to_thread(control_request, state, {"cmd": "status"})
    assert status["ok"]

    def restart() -> None:
        with contextlib.suppress(Exception):  # (the stop hangs up on it: no matter)
            control_request(state, {"cmd": "restart"})

    restarting = asyncio.ensure_future(asyncio.to_thread(restart))
    await reloading.wait()
    assert (await asyncio.to_thread(control_request, state, {"cmd": "stop"}))["ok"]
    # the stop has begun: the socket is gone, and its next step is the close
    await until("the stop begun", lambda: not socket_path.exists())
    await asyncio.sleep(0)
    assert order == ["reload"]  # the close waits for the reload
    release.set()
    assert await serving == 0
    await restarting
    assert order == ["reload", "reloaded", "close"]


async def test_a_request_that_takes_longer_than_the_clients_timeout_is_still_answered(
    short_dir: Path,
) -> None:
    """`gateway restart` waits for the replies in flight (up to --grace, which may be a
    minute): the client gave up after its 30 s ("the gateway did not answer"), exit 1,
    while the restart went on and succeeded. The gateway says it is still working."""
    from wechat_sdk.gateway.control import control_request

    release = asyncio.Event()

    async def slow(request: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        return {"ok": True, "done": request.get("cmd")}

    server = ControlServer(short_dir, slow, keepalive_s=0.05)
    await server.start()
    try:
        asking = asyncio.ensure_future(
            asyncio.to_thread(control_request, short_dir, {"cmd": "restart"}, timeout=1.0)
        )
        await asyncio.sleep(2.5)  # more than the client's timeout
        assert not asking.done()
        release.set()
        assert (await asking)["done"] == "restart"
    finally:
        await server.stop()


@pytest.mark.parametrize("default", [False, True])
async def test_the_refusal_of_a_second_gateway_names_a_stop_command_that_reaches_the_first(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch, default: bool
) -> None:
    # "stop it with: wechat-sdk gateway stop" reached the default state directory only:
    # for a gateway on another one, it answered "no gateway is running"
    from wechat_sdk.gateway.control import ControlError

    monkeypatch.setenv("HOME", str(short_dir))  # (the default: ~/.clawdbot/wechat)
    directory = short_dir / ".clawdbot" / "wechat" if default else short_dir / "my state"
    directory.mkdir(parents=True)
    first = ControlServer(directory, handle)
    await first.start()
    try:
        with pytest.raises(ControlError) as refused:
            await ControlServer(directory, handle).start()
    finally:
        await first.stop()
    stop = (
        "wechat-sdk gateway stop"
        if default
        else f"wechat-sdk gateway stop --state-dir '{directory}'"
    )
    assert str(refused.value).endswith(f"(stop it with: {stop})")


async def test_a_second_gateway_on_the_directory_is_refused_even_before_the_first_has_its_socket(
    short_dir: Path,
) -> None:
    # two gateways started at the same moment both found no socket and both ran (on one
    # store, answering every message twice): the directory's lock decides
    from wechat_sdk.gateway.control import ControlError

    first = ControlServer(short_dir, handle)
    await first.start()
    first.path.unlink()  # (as if it had not bound it yet)
    second = ControlServer(short_dir, handle)
    with pytest.raises(ControlError, match="a gateway is already running"):
        await second.start()
    await first.stop()
    third = ControlServer(short_dir, handle)  # the first gone: the directory is free
    await third.start()
    try:
        assert (await ask(third.path, b'{"cmd": "status"}\n')).startswith(b'{"ok": true')
    finally:
        await third.stop()


async def test_the_state_directory_stays_locked_until_the_stopping_gateway_is_done(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop gives the replies in flight the grace, then keeps what is left in the store.
    The directory's lock went at the start of the stop: a `gateway run` meanwhile (say
    `gateway stop && gateway run`) started beside it, on the same accounts and store, and
    took up the kept work before the first had written it."""
    from wechat_sdk.agent import AgentTurn
    from wechat_sdk.gateway import Gateway
    from wechat_sdk.gateway.control import SOCKET_NAME, ControlError, control_request
    from wechat_sdk.gateway.service import serve

    closing, release = asyncio.Event(), asyncio.Event()
    real_close = Gateway.close

    async def slow_close(self: Gateway, grace_s: float = 10.0) -> None:
        closing.set()  # (as if replies in flight took their grace)
        await release.wait()
        await real_close(self, grace_s)

    monkeypatch.setattr(Gateway, "close", slow_close)

    async def echo(turn: AgentTurn) -> str:
        return turn.text

    config = short_dir / "config.json5"
    config.write_text('{channels: {wechat: {puppet: "simulator"}}}')
    state = short_dir / "state"
    serving = asyncio.ensure_future(serve(config, state, echo))
    await until("the control socket", (state / SOCKET_NAME).exists)
    assert (await asyncio.to_thread(control_request, state, {"cmd": "stop"}))["ok"]
    await closing.wait()
    second = ControlServer(state, handle)
    try:
        with pytest.raises(ControlError, match="a gateway is already running"):
            await second.start()
    finally:
        release.set()
        assert await serving == 0
    await second.start()  # the first is done: the directory is free
    await second.stop()


async def test_a_state_directory_that_cannot_be_locked_is_said_as_unusable(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (an NFS mount whose server's lock service does not answer: locking fails there,
    # and the gateway ended with a Python traceback)
    import errno
    import fcntl

    from wechat_sdk.gateway.control import ControlError

    def no_locks(fd: int, operation: int, *more: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "lockf", no_locks)
    with pytest.raises(ControlError, match=r"cannot use the state directory .*No locks available"):
        await ControlServer(short_dir, handle).start()


_GATEWAY_THAT_FORKS = """
import asyncio, os, sys, time
from pathlib import Path
from wechat_sdk.gateway.control import ControlServer

async def handle(request):
    return {"ok": True}

async def main():
    await ControlServer(Path(sys.argv[1]), handle).start()
    child = os.fork()  # an agent's child process, forked without exec
    if child == 0:
        os.close(1)  # (the test waits for the gateway's output to end)
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_the_state_directory_is_free_once_the_gateway_is_killed_though_its_child_lives(
    short_dir: Path,
) -> None:
    """The lock is the gateway process's own: a child it forked (an agent's worker that
    never execs) does not keep the directory locked after a `kill -9` of the gateway. It
    did (flock's lock belongs to the open file, which the child shares): no gateway could
    start on the directory again while the child lived."""
    import os
    import signal
    import sys

    from wechat_sdk.gateway.control import ControlError

    gateway = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _GATEWAY_THAT_FORKS, str(short_dir), stdout=asyncio.subprocess.PIPE
    )
    child: int | None = None
    try:
        assert gateway.stdout is not None
        child = int(await gateway.stdout.readline())
        second = ControlServer(short_dir, handle)
        with pytest.raises(ControlError, match="a gateway is already running"):
            await second.start()  # (while the gateway runs, its directory is its own)
        gateway.kill()
        await gateway.wait()
        os.kill(child, 0)  # the child lives on
        await second.start()
        try:
            assert (await ask(second.path, b'{"cmd": "status"}\n')).startswith(b'{"ok": true')
        finally:
            await second.stop()
    finally:
        if gateway.returncode is None:
            gateway.kill()
            await gateway.wait()
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
