"""A scripted iLink server (aiohttp) for the adapter's wire tests: ``getupdates`` and
``sendmessage`` answer what the test queued (any bytes, any status), everything else
answers as the real server does, and every request is recorded."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Script:
    """What the server answers, and what it was asked."""

    base_url: str = ""
    updates: asyncio.Queue[tuple[int, bytes]] = field(default_factory=asyncio.Queue)
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    next_id: int = 900
    #: a ``Set-Cookie`` header every answer carries (None: none)
    set_cookie: str | None = None
    #: ``sendmessage`` answers queued by the test (status, body), before the normal one
    send_answers: asyncio.Queue[tuple[int, bytes, dict[str, str]]] = field(
        default_factory=asyncio.Queue
    )
    #: seconds the server's clock is ahead of ours (its ``Date`` header says so)
    clock_ahead_s: float = 0.0
    #: the ``upload_full_url`` that ``getuploadurl`` gives (None: only ``upload_param``)
    upload_full_url: str | None = None
    #: CDN upload answers queued by the test (status, ``x-error-message``), before the
    #: normal one
    upload_answers: asyncio.Queue[tuple[int, str]] = field(default_factory=asyncio.Queue)

    def batch(self, *msgs: dict[str, Any], cursor: str = "") -> None:
        """Queue a ``getupdates`` answer with these messages."""
        body = {
            "ret": 0,
            "msgs": list(msgs),
            "get_updates_buf": cursor,
            "longpolling_timeout_ms": 500,
        }
        self.updates.put_nowait((200, json.dumps(body).encode()))

    def raw(self, body: bytes, status: int = 200) -> None:
        """Queue a ``getupdates`` answer of these bytes."""
        self.updates.put_nowait((status, body))

    def asked(self, endpoint: str) -> list[Request]:
        return [r for r in self.requests if r.path.endswith(endpoint)]


@asynccontextmanager
async def scripted() -> AsyncIterator[Script]:
    script = Script()

    async def record(request: web.Request) -> Any:
        text = await request.text()
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = text
        script.requests.append(Request(request.path, dict(request.headers), body))
        return body

    async def getupdates(request: web.Request) -> web.Response:
        await record(request)
        try:
            status, body = await asyncio.wait_for(script.updates.get(), 0.2)
        except TimeoutError:
            status, body = 200, b'{"ret":0,"msgs":[],"longpolling_timeout_ms":500}'
        return web.Response(status=status, body=body, content_type="application/json")

    async def sendmessage(request: web.Request) -> web.Response:
        await record(request)
        if not script.send_answers.empty():
            status, body, headers = script.send_answers.get_nowait()
            return web.Response(status=status, body=body, headers=headers)
        script.next_id += 1
        return web.json_response({"ret": 0, "message_id": script.next_id})

    async def ok(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"ret": 0, "typing_ticket": "ticket"})

    async def getuploadurl(request: web.Request) -> web.Response:
        await record(request)
        answer = {"ret": 0, "upload_param": "up-1", "upload_full_url": script.upload_full_url}
        return web.json_response(answer)

    async def upload(request: web.Request) -> web.Response:
        await request.read()
        script.requests.append(Request(request.path_qs, dict(request.headers), None))
        if not script.upload_answers.empty():
            status, why = script.upload_answers.get_nowait()
            return web.Response(status=status, headers={"x-error-message": why})
        return web.Response(headers={"x-encrypted-param": "down-1"})

    async def get_bot_qrcode(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"qrcode": "qr-1", "qrcode_img_content": "https://qr/1"})

    async def download(request: web.Request) -> web.Response:
        script.requests.append(Request(request.path_qs, dict(request.headers), None))
        data = script.files.get(request.query.get("encrypted_query_param", ""))
        if data is None:
            return web.Response(status=404, text="no such file")
        return web.Response(body=data, content_type="application/octet-stream")

    @web.middleware
    async def headers(request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        if script.set_cookie is not None:
            response.headers["Set-Cookie"] = script.set_cookie
        server_now = time.time() + script.clock_ahead_s
        response.headers["Date"] = email.utils.formatdate(server_now, usegmt=True)
        return response

    app = web.Application(middlewares=[headers])
    app.router.add_post("/ilink/bot/getupdates", getupdates)
    app.router.add_post("/ilink/bot/sendmessage", sendmessage)
    for name in ("msg/notifystart", "msg/notifystop", "getconfig", "sendtyping"):
        app.router.add_post(f"/ilink/bot/{name}", ok)
    app.router.add_post("/ilink/bot/getuploadurl", getuploadurl)
    app.router.add_post("/ilink/bot/get_bot_qrcode", get_bot_qrcode)
    app.router.add_post("/c2c/upload", upload)
    app.router.add_get("/c2c/download", download)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    script.base_url = f"http://127.0.0.1:{port}"
    try:
        yield script
    finally:
        await runner.cleanup()
