"""Optional HTTP health endpoints on 127.0.0.1 (``channels.wechat.health.port``).

- ``GET /healthz``: 200 while the process serves at all (liveness).
- ``GET /readyz``: 200 when every enabled account is ``ready``, else 503 (readiness), with
  each account's state in the body.

Two fixed GET endpoints do not need a web framework: this is a minimal HTTP/1.1 server on
``asyncio.start_server`` (one request per connection, ``Connection: close``). Bodies are
JSON and hold account ids and lifecycle states only, never secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from wechat_sdk.gateway.status import AccountStatus

__all__ = ["HEALTH_HOST", "HealthServer", "readiness"]

HEALTH_HOST = "127.0.0.1"
_MAX_HEAD = 8192
#: an I/O guard, not a timer of the channel: a client that sends no request line in this
#: many seconds is dropped (so it cannot hold a connection open for ever)
_READ_TIMEOUT_S = 5.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS[503] = "Service Unavailable"

log = logging.getLogger("wechat_sdk.gateway")


def readiness(statuses: list[AccountStatus], enabled: set[str]) -> tuple[bool, dict[str, Any]]:
    """Whether every enabled account is ready, and the JSON body saying so.

    A gateway without an enabled account is not ready: nothing would answer.
    """
    accounts = [
        {
            "account": s.account,
            "enabled": s.account in enabled,
            "lifecycle": s.lifecycle,
            "state": s.state,
        }
        for s in statuses
    ]
    live = [a for a in accounts if a["enabled"]]
    ready = bool(live) and all(a["lifecycle"] == "ready" for a in live)
    body: dict[str, Any] = {"ready": ready, "accounts": accounts}
    if not live:
        body["reason"] = "no enabled WeChat account"
    elif not ready:
        waiting = [f"{a['account']} ({a['state']})" for a in live if a["lifecycle"] != "ready"]
        body["reason"] = "not ready: " + ", ".join(waiting)
    return ready, body


class HealthServer:
    """Serves ``/healthz`` and ``/readyz`` on 127.0.0.1.

    ``port=0`` asks the system for a free port; :attr:`port` tells which one after
    :meth:`start`.
    """

    def __init__(
        self,
        port: int,
        statuses: Callable[[], list[AccountStatus]],
        enabled: Callable[[], set[str]],
    ) -> None:
        self.requested_port = port
        self._statuses = statuses
        self._enabled = enabled
        self._server: asyncio.AbstractServer | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://{HEALTH_HOST}:{self.port}"

    async def start(self) -> None:
        """Listen; raises OSError when the port cannot be used (taken, not allowed)."""
        self._server = await asyncio.start_server(
            self._serve, host=HEALTH_HOST, port=self.requested_port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info(
            "health endpoints on %s/healthz and %s/readyz",
            self.url,
            self.url,
            extra={"account": "-"},
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    # ------------------------------------------------------------ one request

    def respond(self, method: str, target: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Status code, JSON body and extra headers for one request."""
        path = target.split("?", 1)[0]
        if path not in ("/healthz", "/readyz"):
            return 404, {"error": f"no such endpoint {path!r}: use /healthz or /readyz"}, {}
        if method not in ("GET", "HEAD"):
            return 405, {"error": f"{method} is not allowed: use GET"}, {"Allow": "GET, HEAD"}
        if path == "/healthz":
            return 200, {"status": "ok"}, {}
        ready, body = readiness(self._statuses(), self._enabled())
        return (200 if ready else 503), body, {}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
            except asyncio.LimitOverrunError:
                head = b""
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                return
            if len(head) > _MAX_HEAD:
                head = b""
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            extra: dict[str, str] = {}
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                code, body = 400, {"error": "bad request line"}
                method = "GET"
            else:
                method = parts[0]
                code, body, extra = self.respond(method, parts[1])
            payload = json.dumps(body, ensure_ascii=False).encode()
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "Content-Length": str(len(payload)),
                "Cache-Control": "no-store",
                "Connection": "close",
                **extra,
            }
            lines = [f"HTTP/1.1 {code} {_REASONS[code]}"]
            lines += [f"{k}: {v}" for k, v in headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            if method != "HEAD":
                writer.write(payload)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        except Exception:  # a bad client never takes the gateway down
            log.exception("health endpoint failed", extra={"account": "-"})
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
