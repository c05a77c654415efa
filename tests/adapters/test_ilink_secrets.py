"""The bot's token never reaches a log line, even from an answer cut short or an error
page that echoes the request."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from aiohttp import web

from wechat_sdk.adapters.ilink import login as ilink_login
from wechat_sdk.adapters.ilink.api import ILinkApi
from wechat_sdk.adapters.ilink.puppet import ILinkOptions, ILinkPuppet
from wechat_sdk.clock import RealClock

SECRET = "7f3a9c21b7de5e8f0a1b2c3d4e5f60718293a4b5"


async def test_a_qr_status_answer_cut_in_its_token_never_shows_the_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy cut the body in the middle of ``bot_token``: the scrub matched only a whole
    ``"bot_token":"..."`` pair, and during a QR login there is no token yet to scrub by."""
    monkeypatch.setattr(ilink_login, "RETRY_S", 0.01)
    caplog.set_level(logging.DEBUG)

    async def qrcode(request: web.Request) -> web.Response:
        return web.json_response({"qrcode": "qr-1", "qrcode_img_content": "https://qr/1"})

    async def status(request: web.Request) -> web.Response:
        cut = '{"ret":0,"status":"confirmed","bot_token":"' + SECRET
        return web.Response(body=cut.encode(), content_type="application/json")

    app = web.Application()
    app.router.add_post("/ilink/bot/get_bot_qrcode", qrcode)
    app.router.add_get("/ilink/bot/get_qrcode_status", status)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    puppet = ILinkPuppet(
        account_id="bot",
        account_dir=tmp_path / "bot",
        options=ILinkOptions(base, f"{base}/c2c", "t/1"),
        clock=RealClock(),
    )
    await puppet.start()
    try:
        for _ in range(250):
            if "status call failed" in caplog.text:
                break
            await asyncio.sleep(0.02)
    finally:
        await puppet.stop()
        await runner.cleanup()
    assert "status call failed" in caplog.text
    assert SECRET[:12] not in caplog.text


def test_an_echoed_request_never_shows_the_earlier_tokens() -> None:
    api = ILinkApi(
        None,  # type: ignore[arg-type]  # (no call is made)
        "https://ilinkai.weixin.qq.com",
        "https://novac2c.cdn.weixin.qq.com/c2c",
    )
    page = f'bad request: {{"local_token_list": ["{SECRET}", "other-{SECRET}"]}}'
    assert SECRET[:12] not in api.scrub(page)
    assert SECRET[:12] not in api.scrub(page[:60])  # (cut inside the list)
