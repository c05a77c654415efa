"""A webhook endpoint for tests: a real aiohttp server on 127.0.0.1 that records what it is
sent, each request checked with the ``standardwebhooks`` reference library."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook, WebhookVerificationError


def whsec(seed: int = 1) -> str:
    """A Standard Webhooks secret (the same for the same seed)."""
    return "whsec_" + base64.b64encode(bytes([seed]) * 32).decode()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    #: the payload, when the signature held
    payload: dict[str, Any] | None
    error: str | None
    #: the status this endpoint answered
    status: int

    @property
    def type(self) -> str:
        return str(json.loads(self.body)["type"])


class Receiver:
    """Answers 200 unless ``answers`` says otherwise (statuses, or a status and the
    answer's headers, used up in order), or holds each request until ``release()`` while
    ``held``."""

    def __init__(self, secret: str | None = None, *, port: int | None = None) -> None:
        self.secret = secret or whsec()
        self.received: list[Received] = []
        self.answers: list[int | tuple[int, dict[str, str]]] = []
        self.held = False
        self._release = asyncio.Event()
        self._changed = asyncio.Event()
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self.server = TestServer(app, host="127.0.0.1", port=port)
        self.url = ""

    async def start(self) -> Receiver:
        await self.server.start_server()
        self.url = str(self.server.make_url("/hook"))  # (kept after a close)
        return self

    async def close(self) -> None:
        self._release.set()
        await self.server.close()

    def release(self) -> None:
        self.held = False
        self._release.set()

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.held:
            await self._release.wait()
        answer = self.answers.pop(0) if self.answers else 200
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
            error = None
        except WebhookVerificationError as exc:
            payload, error = None, str(exc)
        self.received.append(Received(dict(request.headers), body, payload, error, status))
        self._changed.set()
        return web.Response(status=status, headers=headers)

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """The verified payloads this endpoint took (answered 2xx), in order."""
        return [
            r.payload
            for r in self.received
            if r.payload is not None
            and r.status < 300
            and (event_type is None or r.payload["type"] == event_type)
        ]

    async def wait_for(self, count: int, event_type: str | None = None) -> list[dict[str, Any]]:
        """Wait (real time, at most 10 s) until ``count`` such events were taken."""
        async with asyncio.timeout(10):
            while len(self.events(event_type)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.events(event_type)

    async def wait_attempts(self, count: int) -> None:
        """Wait (real time, at most 10 s) until ``count`` requests came, whatever the answer."""
        async with asyncio.timeout(10):
            while len(self.received) < count:
                self._changed.clear()
                await self._changed.wait()


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (real time, at most 10 s) until ``condition()`` holds: for state with no event
    to wait on (a store's rows)."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 (nothing to wait on but the state itself)
            await asyncio.sleep(0.01)
