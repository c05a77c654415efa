"""The control socket: `wechat-sdk gateway status|restart|stop` talk to a running gateway.

A Unix socket ``<stateDir>/control.sock`` (mode 0600, directory 0700): one JSON request
line, one JSON response line (after a ``{"working": true}`` line every KEEPALIVE_S while
the request is handled). Only the owner of the state directory can connect. A client
has IDLE_TIMEOUT_S to send its request, MAX_CLIENTS are served at once (more are told the
gateway is busy), and one that goes away without a request is no error.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shlex
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "DEFAULT_STATE_DIR",
    "SOCKET_NAME",
    "ControlError",
    "ControlServer",
    "NoGateway",
    "control_request",
    "state_dir_option",
]

#: the state directory when neither the config's stateDir nor --state-dir names one (here,
#: beside the socket, so that the CLI finds it without importing the whole gateway)
DEFAULT_STATE_DIR = Path("~/.clawdbot/wechat")
SOCKET_NAME = "control.sock"
#: seconds a client may take to send its request line before it is hung up on
IDLE_TIMEOUT_S = 10.0
#: clients served at once; another is answered "busy" and hung up on
MAX_CLIENTS = 16
#: seconds between two "still working" lines while a request is handled (a restart waits
#: for the replies in flight, up to --grace): a client waits as long as they come
KEEPALIVE_S = 5.0
#: the line that says it, before the answer
WORKING = b'{"working": true}'
#: the file a running gateway holds locked: one gateway a state directory, even when two
#: start at the same moment (both would find no socket, and bind one each)
LOCK_NAME = "gateway.lock"
#: the longest path a Unix socket is bound to (Linux's sun_path is 108 bytes with its NUL)
MAX_SOCKET_PATH = 107
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


log = logging.getLogger("wechat_sdk.gateway")


class ControlError(Exception):
    """The running gateway could not be reached or refused the request."""


class NoGateway(ControlError):
    """No gateway is running on this state directory."""


class ControlServer:
    """Serves control requests for a running gateway."""

    def __init__(
        self,
        state_dir: Path,
        handler: Handler,
        *,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_clients: int = MAX_CLIENTS,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self.path = state_dir / SOCKET_NAME
        self.handler = handler
        self.idle_timeout_s = idle_timeout_s
        self.max_clients = max_clients
        self.keepalive_s = keepalive_s
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        #: the state directory's identity while this gateway holds it (see _hold)
        self._lock: tuple[int, int] | None = None

    async def start(self) -> None:
        """Listen on the socket (the state directory locked). Its requests' lines show no
        account (``-``), whichever task opened it."""
        # here, not at the top: the CLI's control_request does without them
        from wechat_sdk.gateway.runner import as_no_account

        await as_no_account(self._start())

    async def _start(self) -> None:
        import asyncio

        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            why = "it is not a directory" if directory.is_file() else exc.strerror or str(exc)
            raise _unusable(directory, why) from None
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:  # (bind says only "too long")
            raise _unusable(
                directory,
                f"its path is too long for the gateway's control socket, {self.path} "
                f"(a Unix socket's path has at most {MAX_SOCKET_PATH} bytes)",
            )
        self._lock = _hold(directory)
        try:
            # (a socket left by a gateway that died: this one holds the directory now)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            old = os.umask(0o177)
            try:
                self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
            except OSError as exc:  # (a read-only file system, say)
                raise _unusable(directory, exc.strerror or str(exc)) from None
            finally:
                os.umask(old)
            self.path.chmod(0o600)
        except BaseException:
            self._release()
            raise

    async def stop_answering(self) -> None:
        """Close the socket: a stopping gateway takes no more requests. The state directory
        stays locked until :meth:`stop` (the gateway still finishes its replies and keeps
        what is left in the store: no other may start on it meanwhile)."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._clients):  # a client still connected: its read ends
                writer.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def stop(self) -> None:
        """Stop answering (if not yet), and let the state directory go."""
        await self.stop_answering()
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            _let_go(self._lock)
            self._lock = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client: one request line, one answer. Nothing a client does (say nothing,
        go away, send garbage) raises out of here: that would log a traceback."""
        import asyncio

        if len(self._clients) >= self.max_clients:
            busy = "the gateway is busy with other control clients; try again"
            await _answer(writer, {"ok": False, "error": busy})
            return
        self._clients.add(writer)
        try:
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    line = await reader.readline()
            except TimeoutError:
                idle = f"no request within {self.idle_timeout_s:g} s"
                await _answer(writer, {"ok": False, "error": idle})
                return
            except (OSError, ValueError) as exc:  # reset; a line over the stream's limit
                log.debug("control client dropped: %s", exc)
                await _answer(writer, {"ok": False, "error": "unreadable request"})
                return
            if not line.strip():  # connected and went away (or sent an empty line)
                await _answer(writer, None)
                return
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
                response = await self._handled(request, writer)
            except Exception as exc:  # a bad request never takes the gateway down
                response = {"ok": False, "error": str(exc)}
            await _answer(writer, response)
        finally:
            self._clients.discard(writer)

    async def _handled(
        self, request: dict[str, Any], writer: asyncio.StreamWriter
    ) -> dict[str, Any]:
        """The handler's answer to ``request``. While it works, the client is told so
        every :attr:`keepalive_s`, so that it waits for a long one (a restart) and still
        gives up on a gateway that hangs."""
        import asyncio

        keepalive = asyncio.ensure_future(self._keep_alive(writer))
        try:
            return await self.handler(request)
        finally:
            keepalive.cancel()

    async def _keep_alive(self, writer: asyncio.StreamWriter) -> None:
        import asyncio

        while True:
            await asyncio.sleep(self.keepalive_s)
            if writer.is_closing():  # (a client that went away: the work goes on)
                return
            try:
                writer.write(WORKING + b"\n")
                await writer.drain()
            except OSError as exc:
                log.debug("control client gone while its request was handled: %s", exc)
                return


def _unusable(directory: Path, why: str) -> ControlError:
    """The gateway cannot keep its state (and its control socket) in ``directory``."""
    return ControlError(
        f"cannot use the state directory {directory}: {why}; choose another with "
        "--state-dir DIR or the config's stateDir"
    )


async def _answer(writer: asyncio.StreamWriter, response: dict[str, Any] | None) -> None:
    """Send ``response`` (if any) and close; a client that is already gone is no error."""
    try:
        if response is not None:
            writer.write(json.dumps(response, ensure_ascii=False).encode() + b"\n")
            await writer.drain()
    except OSError as exc:  # the client went away first (a broken pipe, a reset)
        log.debug("control client gone before its answer: %s", exc)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


#: the state directories this process holds (by device and inode), each with its lock
#: file's one descriptor. The lock is a POSIX record lock (fcntl): the process's own, so
#: a child it forks (an agent's worker that never execs) does not inherit it, and a kill
#: of the gateway frees the directory even while the child lives (flock's lock belongs to
#: the open file, which the child shares). Being the process's, it does not keep out a
#: second gateway of the same process, and closing any descriptor of the file would let
#: it go: so this process opens the lock file once, here, and a second holder of the same
#: process is refused by this table, before it opens the file.
_HELD: dict[tuple[int, int], int] = {}
_HELD_LOCK = threading.Lock()


def _hold(directory: Path) -> tuple[int, int]:
    """Lock the state directory's lock file for this gateway until :func:`_let_go` (the
    system lets it go when the process ends, however it ends); its identity."""
    try:
        st = directory.stat()
    except OSError as exc:
        raise _unusable(directory, exc.strerror or str(exc)) from None
    held = (st.st_dev, st.st_ino)
    with _HELD_LOCK:
        if held in _HELD:
            raise _running(directory)
        try:
            fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise _unusable(directory, exc.strerror or str(exc)) from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)  # (no lock of this process's on it: nothing else to let go)
            if exc.errno in (errno.EACCES, errno.EAGAIN):  # another process holds it
                raise _running(directory) from None
            # (ENOLCK: locking failed, say an NFS mount whose lock service does not answer)
            why = f"cannot lock {LOCK_NAME} there: {exc.strerror}"
            raise _unusable(directory, why) from None
        _HELD[held] = fd
    return held


def _let_go(held: tuple[int, int]) -> None:
    """Let the state directory :func:`_hold` locked go."""
    with _HELD_LOCK:
        os.close(_HELD.pop(held))  # (the lock goes with it)


def _running(directory: Path) -> ControlError:
    return ControlError(
        f"a gateway is already running on {directory} (stop it with: "
        f"wechat-sdk gateway stop{state_dir_option(directory)})"
    )


def state_dir_option(state_dir: Path | None) -> str:
    """What a CLI command given in a message needs to reach the gateway on ``state_dir``:
    ``" --state-dir DIR"``, or nothing for the default one. The CLI finds a running gateway
    by its state directory, so a command without it would not reach one elsewhere (a
    rehearsal's ``stateDir``, ``--state-dir``)."""
    if state_dir is None:
        return ""
    if Path(state_dir).expanduser().resolve() == DEFAULT_STATE_DIR.expanduser().resolve():
        return ""
    return f" --state-dir {shlex.quote(str(state_dir))}"


def control_request(
    state_dir: Path, request: dict[str, Any], timeout: float = 30.0
) -> dict[str, Any]:
    """Send one request to the gateway running on ``state_dir`` (blocking)."""
    path = state_dir / SOCKET_NAME
    if not path.exists():
        raise NoGateway(
            f"no gateway is running (no control socket at {path}); start one "
            "with: wechat-sdk gateway run"
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            raise NoGateway(
                f"no gateway is running (stale socket at {path}); start one "
                "with: wechat-sdk gateway run"
            ) from None
        data = b""
        try:
            s.sendall(json.dumps(request).encode() + b"\n")
            # (each recv waits up to the timeout: a "still working" line starts it again)
            while not data.endswith(b"\n") or data.rstrip(b"\n").endswith(WORKING):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            raise ControlError(f"the gateway did not answer within {timeout:.0f} s") from None
        except OSError as exc:  # (it stopped while answering)
            raise ControlError(f"the gateway did not answer: {exc}") from None
    data = b"\n".join(line for line in data.splitlines() if line != WORKING)
    try:
        response: dict[str, Any] = json.loads(data)
    except ValueError:
        raise ControlError("the gateway sent an unreadable answer") from None
    if not response.get("ok", False):
        raise ControlError(str(response.get("error", "request refused")))
    return response
