"""iLink CDN downloads follow a redirect only to the configured hosts (the CDN's, the
API's), as the first address is chosen: a CDN answering with a redirect to another host,
an internal one say, is not followed. And a download ends by its deadline, however the
CDN trickles its bytes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web

from wechat_sdk.adapters.ilink import cdn
from wechat_sdk.adapters.ilink.api import ILinkApi
from wechat_sdk.adapters.ilink.wire import MediaRef
from wechat_sdk.clock import RealClock
from wechat_sdk.inbound.media import MediaSaver
from wechat_sdk.puppet import FileInfo, Message, MessageKind

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serving(handler: Handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def downloaded(cdn_handler: Handler) -> AsyncIterator[bytes]:
    runner, base = await serving(cdn_handler)
    try:
        async with aiohttp.ClientSession() as session:
            api = ILinkApi(session, base, f"{base}/c2c")
            async for chunk in cdn.download(api, MediaRef("image", "param", None, None), 10_000):
                yield chunk
    finally:
        await runner.cleanup()


async def test_a_redirect_off_the_cdn_is_not_followed() -> None:
    asked: list[str] = []

    async def internal(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(body=b"instance metadata")

    inner, inner_base = await serving(internal)

    async def redirecting(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{inner_base}/latest/meta-data/")

    try:
        with pytest.raises(cdn.CdnFailed, match="redirected off the configured CDN"):
            async for _ in downloaded(redirecting):
                pass
        assert asked == []
    finally:
        await inner.cleanup()


async def test_a_redirect_on_the_cdn_is_followed() -> None:
    async def moving(request: web.Request) -> web.Response:
        if request.path == "/c2c/download":
            raise web.HTTPTemporaryRedirect("/c2c/elsewhere")
        return web.Response(body=b"\x89PNG picture")

    assert b"".join([c async for c in downloaded(moving)]) == b"\x89PNG picture"


async def test_a_redirect_without_a_location_is_a_clear_error_asked_once() -> None:
    asked: list[str] = []

    async def nowhere(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(status=302)

    with pytest.raises(cdn.CdnFailed, match="HTTP 302, no Location"):
        async for _ in downloaded(nowhere):
            pass
    assert asked == ["/c2c/download"]


def test_a_redirect_from_https_to_plain_http_is_not_followed() -> None:
    from wechat_sdk.adapters.ilink.cdn import _redirected

    hosts = ("https://cdn.example",)
    with pytest.raises(cdn.CdnFailed, match="from https to plain http"):
        _redirected("https://cdn.example/download?q=1", "http://cdn.example/x", 302, hosts)
    assert _redirected("https://cdn.example/d", "https://cdn.example/x", 307, hosts) == (
        "https://cdn.example/x"
    )


async def test_a_download_the_cdn_trickles_ends_at_its_deadline_leaving_no_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A CDN sending a byte now and then, each well within the per-read timeout, kept a
    download (and the message waiting on it) going for ever. Past the download's
    deadline it fails like any failed download: no file kept, a note for the agent."""
    monkeypatch.setattr(cdn, "DOWNLOAD_S", 0.5)

    async def trickling(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError):
            while True:
                await resp.write(b"x")
                await asyncio.sleep(0.05)
        return resp

    puppet = SimpleNamespace(download=lambda _id, max_bytes: downloaded(trickling))
    message = Message("m1", MessageKind.IMAGE, "wxid_a", file=FileInfo("p.png", 0))
    saver = MediaSaver(tmp_path / "media", RealClock())
    async with asyncio.timeout(20):  # (without a deadline it never ends: fail, not hang)
        item = await saver.fetch(puppet, message, 10_000)  # type: ignore[arg-type]
    assert item.path is None and item.note is not None
    assert "could not be downloaded" in item.note and "took longer than 0.5 s" in item.note
    assert not [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
