"""The simulated phone that asks for the number it shows (iLink's ``need_verifycode``), over
real HTTP: the login protocol as a client sees it, and the control API a test in any
language reads the phone through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from simulator import SimulatedWeChat
from simulator.ilink import ILinkServer
from wechat_sdk.clock import RealClock


@pytest.fixture
async def world() -> SimulatedWeChat:
    world = SimulatedWeChat(seed=3, clock=RealClock())
    world.add_account("bot", transport="ilink")
    return world


@pytest.fixture
async def server(world: SimulatedWeChat) -> AsyncIterator[ILinkServer]:
    async with await world.ilink_server(poll_hold_s=0.3) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(method, url, json=body) as resp:
        return resp.status, await resp.json()


async def status(http: aiohttp.ClientSession, base: str, qrcode: str, number: str = "") -> str:
    query = f"qrcode={qrcode}" + (f"&verify_code={number}" if number else "")
    _, answer = await call(http, "GET", f"{base}ilink/bot/get_qrcode_status?{query}")
    value: str = answer["status"]
    return value


def wrong_for(number: str) -> str:
    return f"{(int(number) + 1) % 1_000_000:06d}"


async def test_the_phone_asks_for_its_number_until_a_poll_carries_it(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    base = server.base_url
    _, qr = await call(http, "POST", f"{base}ilink/bot/get_bot_qrcode?bot_type=3", {})
    world.scan("bot")
    shown = world.confirm("bot", verify_code=True)
    assert shown is not None and len(shown) == 6 and shown.isdigit()
    assert world.phone_shows("bot") == shown
    assert await status(http, base, qr["qrcode"]) == "need_verifycode"  # asked, at once
    assert await status(http, base, qr["qrcode"], wrong_for(shown)) == "need_verifycode"
    assert world.phone_shows("bot") == shown  # a wrong number: asked again, the same one
    _, answer = await call(
        http, "GET", f"{base}ilink/bot/get_qrcode_status?qrcode={qr['qrcode']}&verify_code={shown}"
    )
    assert answer["status"] == "confirmed" and answer["bot_token"]
    assert answer["ilink_bot_id"] == world.accounts["bot"].wxid
    assert world.phone_shows("bot") is None
    # Tencent's client sends the number with each poll until the status moves on: no harm
    assert await status(http, base, qr["qrcode"], shown) == "confirmed"
    checks = [(e["right"], e.get("wrong")) for e in world.events_log if e["event"] == "verify_code"]
    assert checks == [(False, 1), (True, None)]


async def test_three_wrong_numbers_block_the_code(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    base = server.base_url
    _, qr = await call(http, "POST", f"{base}ilink/bot/get_bot_qrcode?bot_type=3", {})
    world.scan("bot")
    shown = world.confirm("bot", verify_code=True)
    assert shown is not None
    answers = [await status(http, base, qr["qrcode"], wrong_for(shown)) for _ in range(3)]
    assert answers == ["need_verifycode", "need_verifycode", "verify_code_blocked"]
    # the code is dead: even the right number does not log in with it
    assert await status(http, base, qr["qrcode"], shown) == "verify_code_blocked"
    assert world.ilink_state.bot("bot").token is None
    assert world.phone_shows("bot") is None


async def test_the_control_api_makes_the_phone_ask_and_shows_its_number(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    base = server.base_url
    code, refused = await call(http, "POST", f"{base}sim/accounts/bot/scan", {"verify_code": True})
    assert code == 400 and "on confirm or login only" in refused["error"]
    code, refused = await call(
        http, "POST", f"{base}sim/accounts/bot/login", {"verify_code": "yes"}
    )
    assert code == 400 and refused["error"] == 'verify_code: expected true or false, got "yes"'
    _, qr = await call(http, "POST", f"{base}ilink/bot/get_bot_qrcode?bot_type=3", {})
    code, account = await call(http, "POST", f"{base}sim/accounts/bot/login", {"verify_code": True})
    assert code == 200 and account["logged_in"] is False
    number = account["phone_shows"]
    code, phone = await call(http, "GET", f"{base}sim/accounts/bot/phone")
    assert (code, phone) == (200, {"account": "bot", "shows": number})
    code, codes = await call(http, "GET", f"{base}sim/qrcodes")
    assert [(c["status"], c["wrong_codes"]) for c in codes] == [("need_verifycode", 0)]
    assert await status(http, base, qr["qrcode"], number) == "confirmed"
    _, accounts = await call(http, "GET", f"{base}sim/accounts")
    assert accounts[0]["logged_in"] is True and accounts[0]["phone_shows"] is None
    code, _ = await call(http, "GET", f"{base}sim/accounts/nobody/phone")
    assert code == 404
