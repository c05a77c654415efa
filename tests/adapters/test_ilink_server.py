"""The simulator's iLink server over real HTTP (aiohttp client), on the real clock: login by
QR, long polls, sends, the reply window, the CDN with AES, faults, and bad requests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from simulator import SimulatedWeChat
from simulator.ilink import ILinkServer
from simulator.ilink import server as server_module
from simulator.ilink.cdn import decrypt, encrypt, padded_size
from simulator.ilink.state import WIRE_ID_BASE, process_id_base
from wechat_sdk.clock import RealClock

ALICE = "alice@im.wechat"


@pytest.fixture
async def world() -> SimulatedWeChat:
    world = SimulatedWeChat(seed=3, clock=RealClock())
    world.add_account("bot", transport="ilink")
    world.add_contact(ALICE, name="Alice")
    return world


@pytest.fixture
async def server(world: SimulatedWeChat) -> AsyncIterator[ILinkServer]:
    async with await world.ilink_server(poll_hold_s=0.3) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class HttpStatus(Exception):
    """An answer other than HTTP 200, with its status and body."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status, self.body = status, body


class Client:
    """The calls a bot makes, as Tencent's client makes them (headers, base_info)."""

    def __init__(self, http: aiohttp.ClientSession, base: str, token: str = "") -> None:
        self.http, self.base, self.token = http, base, token

    def headers(self) -> dict[str, str]:
        uin = base64.b64encode(str(int.from_bytes(os.urandom(4), "big")).encode()).decode()
        headers = {
            "Content-Type": "application/json",
            "AuthorizationType": "ilink_bot_token",
            "X-WECHAT-UIN": uin,
            "iLink-App-Id": "bot",
            "iLink-App-ClientVersion": "132105",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "base_info": {"channel_version": "2.4.9", "bot_agent": "test/1"}}
        async with self.http.post(
            f"{self.base}ilink/bot/{endpoint}", data=json.dumps(body), headers=self.headers()
        ) as resp:
            return await _answer(resp)

    async def get(self, endpoint: str) -> dict[str, Any]:
        async with self.http.get(f"{self.base}ilink/bot/{endpoint}") as resp:
            return await _answer(resp)

    async def login(self, world: SimulatedWeChat, account: str = "bot") -> dict[str, Any]:
        qr = await self.post("get_bot_qrcode?bot_type=3", {"local_token_list": []})
        assert (await self.get(f"get_qrcode_status?qrcode={qr['qrcode']}"))["status"] == "wait"
        world.scan(account)
        assert (await self.get(f"get_qrcode_status?qrcode={qr['qrcode']}"))["status"] == "scaned"
        world.confirm(account)
        status = await self.get(f"get_qrcode_status?qrcode={qr['qrcode']}")
        assert status["status"] == "confirmed"
        self.token = status["bot_token"]
        return status

    async def poll(self, buf: str = "") -> dict[str, Any]:
        return await self.post("getupdates", {"get_updates_buf": buf})

    async def send_text(
        self, to: str, text: str, context_token: str | None, client_id: str = ""
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "from_user_id": "",
            "to_user_id": to,
            "client_id": client_id or f"test-{os.urandom(6).hex()}",
            "message_type": 2,
            "message_state": 2,
            "item_list": [{"type": 1, "text_item": {"text": text}}],
        }
        if context_token is not None:
            msg["context_token"] = context_token
        return await self.post("sendmessage", {"msg": msg})


async def _answer(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    """The JSON of an HTTP 200 answer; :class:`HttpStatus` for any other status."""
    if resp.status != 200:
        raise HttpStatus(resp.status, await resp.text())
    answer: dict[str, Any] = await resp.json()
    return answer


async def open_poll(
    world: SimulatedWeChat, client: Client, buf: str = ""
) -> asyncio.Task[dict[str, Any]]:
    """A long poll started, once the server holds it (its ``getupdates`` was counted)."""
    bot = world.ilink_state.bot("bot")
    before = bot.poll_generation
    poll = asyncio.ensure_future(client.poll(buf))
    for _ in range(250):  # 5 s
        if bot.poll_generation > before or poll.done():
            return poll
        await asyncio.sleep(0.02)
    poll.cancel()
    raise AssertionError("the poll never reached the server")


async def logged_in(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> Client:
    client = Client(http, server.base_url)
    await client.login(world)
    return client


async def first_message(world: SimulatedWeChat, client: Client, text: str = "hi") -> dict[str, Any]:
    await world.say(ALICE, text, account="bot", settle=False)
    updates = await client.poll()
    assert updates["ret"] == 0
    msg: dict[str, Any] = updates["msgs"][0]
    return msg


# ------------------------------------------------------------------ login


async def test_qr_login_gives_a_token_the_bot_id_its_owner_and_the_base_url(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    status = await Client(http, server.base_url).login(world)
    sim = world.accounts["bot"]
    assert status["ilink_bot_id"] == sim.wxid and sim.wxid.endswith("@im.bot")
    assert status["ilink_user_id"] == sim.owner
    assert status["baseurl"] == server.base_url
    assert status["bot_token"]


async def test_world_login_scans_the_code_a_client_is_showing(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = Client(http, server.base_url)
    qr = await client.post("get_bot_qrcode?bot_type=3", {})
    await world.login("bot")
    status = await client.get(f"get_qrcode_status?qrcode={qr['qrcode']}")
    assert status["status"] == "confirmed"


async def test_a_qr_code_expires_after_the_world_ttl_and_a_cancel_kills_it(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    world.qr_ttl_s = 0.2
    client = Client(http, server.base_url)
    qr = await client.post("get_bot_qrcode?bot_type=3", {})
    status = await client.get(f"get_qrcode_status?qrcode={qr['qrcode']}")
    if status["status"] == "wait":  # the hold may end first; the next answer is final
        status = await client.get(f"get_qrcode_status?qrcode={qr['qrcode']}")
    assert status["status"] == "expired"
    world.qr_ttl_s = 120
    qr = await client.post("get_bot_qrcode?bot_type=3", {})
    world.cancel("bot")
    assert (await client.get(f"get_qrcode_status?qrcode={qr['qrcode']}"))["status"] == "expired"
    unknown = await client.get("get_qrcode_status?qrcode=nosuchcode")
    assert unknown["status"] == "expired"


async def test_a_client_still_holding_a_valid_token_is_told_binded_redirect(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    qr = await client.post("get_bot_qrcode?bot_type=3", {"local_token_list": [client.token]})
    world.scan("bot")
    world.confirm("bot")
    status = await client.get(f"get_qrcode_status?qrcode={qr['qrcode']}")
    assert status["status"] == "binded_redirect"
    assert (await client.poll())["ret"] == 0  # the token still works


async def test_each_account_base_url_logs_in_its_own_account(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    world.add_account("second", transport="ilink")
    one = Client(http, server.base_url_for("bot"))
    two = Client(http, server.base_url_for("second"))
    qr_one = await one.post("get_bot_qrcode?bot_type=3", {})
    qr_two = await two.post("get_bot_qrcode?bot_type=3", {})
    world.scan("second")
    world.confirm("second")
    status = await two.get(f"get_qrcode_status?qrcode={qr_two['qrcode']}")
    assert status["ilink_bot_id"] == world.accounts["second"].wxid
    assert (await one.get(f"get_qrcode_status?qrcode={qr_one['qrcode']}"))["status"] == "wait"


# ------------------------------------------------------------------ messages


async def test_a_user_message_arrives_with_a_context_token_and_the_reply_is_in_the_transcript(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    msg = await first_message(world, client, "hello bot")
    assert msg["from_user_id"] == ALICE
    assert msg["to_user_id"] == world.accounts["bot"].wxid
    assert msg["message_type"] == 1
    assert msg["item_list"] == [
        {"type": 1, "text_item": {"text": "hello bot"}, "create_time_ms": msg["create_time_ms"]}
    ]
    assert isinstance(msg["message_id"], int) and msg["message_id"] > 2**53
    sent = await client.send_text(ALICE, "hello Alice", msg["context_token"])
    assert sent["ret"] == 0 and sent["message_id"]
    assert world.texts(to=ALICE, account="bot") == ["hello Alice"]


async def test_a_long_poll_answers_when_a_message_arrives_and_the_cursor_acknowledges(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    server.poll_hold_s = 30.0
    client = await logged_in(world, server, http)
    poll = await open_poll(world, client)
    assert not poll.done()
    await world.say(ALICE, "one", account="bot", settle=False)
    first = await asyncio.wait_for(poll, 5)
    assert [m["item_list"][0]["text_item"]["text"] for m in first["msgs"]] == ["one"]
    assert first["longpolling_timeout_ms"] == 35000
    server.poll_hold_s = 60.0  # (serve --poll-hold-ms 60000): never less than the hold
    await world.say(ALICE, "two", account="bot", settle=False)
    second = await client.poll(first["get_updates_buf"])
    assert second["longpolling_timeout_ms"] == 60000
    assert [m["item_list"][0]["text_item"]["text"] for m in second["msgs"]] == ["two"]
    # a client that lost its cursor gets again only what it never acknowledged
    again = await client.poll("")
    assert [m["item_list"][0]["text_item"]["text"] for m in again["msgs"]] == ["two"]


async def test_a_second_poller_ends_the_first(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    server.poll_hold_s = 30.0
    client = await logged_in(world, server, http)
    first = await open_poll(world, client)
    second = asyncio.ensure_future(client.poll())
    ended = await asyncio.wait_for(first, 5)
    assert ended["ret"] == 0 and ended["msgs"] == []
    await world.say(ALICE, "for the second", account="bot", settle=False)
    got = await asyncio.wait_for(second, 5)
    assert [m["item_list"][0]["text_item"]["text"] for m in got["msgs"]] == ["for the second"]
    assert any(e["event"] == "poll_replaced" for e in world.events_log)


async def test_messages_said_before_the_login_are_delivered_after_it(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    await world.say(ALICE, "early", account="bot", settle=False)
    client = await logged_in(world, server, http)
    got = await client.poll()
    assert [m["item_list"][0]["text_item"]["text"] for m in got["msgs"]] == ["early"]


async def test_typing_needs_the_ticket_of_getconfig_and_is_logged(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    await first_message(world, client)
    ticket = (await client.post("getconfig", {"ilink_user_id": ALICE}))["typing_ticket"]
    wrong = await client.post(
        "sendtyping", {"ilink_user_id": ALICE, "typing_ticket": "nope", "status": 1}
    )
    assert wrong["ret"] == -1
    for status in (1, 2):
        ok = await client.post(
            "sendtyping", {"ilink_user_id": ALICE, "typing_ticket": ticket, "status": status}
        )
        assert ok["ret"] == 0
    assert [e["status"] for e in world.events_log if e["event"] == "typing"] == [1, 2]
    assert (await client.post("msg/notifystart", {}))["ret"] == 0
    assert (await client.post("msg/notifystop", {}))["ret"] == 0


# ------------------------------------------------------------------ the reply window


async def test_the_bot_cannot_write_first(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    refused = await client.send_text(ALICE, "hello?", "made-up")
    assert refused["ret"] == -1  # (no context_token of the user's: refused before the window)
    assert world.texts() == []


async def test_ten_replies_per_user_message_and_bot_messages_do_not_renew(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    msg = await first_message(world, client)
    answers = [await client.send_text(ALICE, f"r{i}", msg["context_token"]) for i in range(11)]
    assert [a["ret"] for a in answers] == [0] * 10 + [-2]
    assert answers[-1]["errmsg"].startswith("reply window closed: 10 replies")
    assert world.texts(to=ALICE) == [f"r{i}" for i in range(10)]
    await world.say(ALICE, "more", account="bot", settle=False)
    assert (await client.send_text(ALICE, "r10", msg["context_token"]))["ret"] == 0


async def test_nothing_after_24_hours_without_a_user_message(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    await world.say(ALICE, "long ago", account="bot", age_s=24 * 3600 + 5, settle=False)
    msg = (await client.poll())["msgs"][0]
    refused = await client.send_text(ALICE, "sorry", msg["context_token"])
    assert refused["ret"] == -2 and "24 h" in refused["errmsg"]


async def test_a_reply_needs_the_users_own_context_token(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    msg = await first_message(world, client)
    missing = await client.send_text(ALICE, "no token", None)
    assert missing["ret"] == -1 and "context_token" in missing["errmsg"]
    await world.say("bob@im.wechat", "hi", account="bot", settle=False)
    bob = (await client.poll(""))["msgs"][-1]
    assert bob["context_token"] != msg["context_token"]
    crossed = await client.send_text(ALICE, "wrong token", bob["context_token"])
    assert crossed["ret"] == -1
    assert world.texts() == []


async def test_text_over_4000_utf16_units_is_refused(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    """Counted as Tencent's client counts (JavaScript's string length): an emoji beyond
    the BMP is 2 units, so 2,001 of them are over (4,002), though 2,001 characters."""
    client = await logged_in(world, server, http)
    msg = await first_message(world, client)
    token = msg["context_token"]
    assert (await client.send_text(ALICE, "x" * 4001, token))["ret"] == -1
    over = await client.send_text(ALICE, "\N{GRINNING FACE}" * 2001, token)
    assert over["ret"] == -1 and "4002 UTF-16 units" in over["errmsg"]
    assert (await client.send_text(ALICE, "\N{GRINNING FACE}" * 2000, token))["ret"] == 0
    assert (await client.send_text(ALICE, "x" * 4000, token))["ret"] == 0


# ------------------------------------------------------------------ media


async def upload(client: Client, data: bytes, media_type: int = 1) -> tuple[str, bytes]:
    key = os.urandom(16)
    filekey = os.urandom(16).hex()
    answer = await client.post(
        "getuploadurl",
        {
            "filekey": filekey,
            "media_type": media_type,
            "to_user_id": ALICE,
            "rawsize": len(data),
            "rawfilemd5": hashlib.md5(data).hexdigest(),
            "filesize": padded_size(len(data)),
            "no_need_thumb": True,
            "aeskey": key.hex(),
        },
    )
    assert answer["ret"] == 0
    async with client.http.post(
        answer["upload_full_url"],
        data=encrypt(data, key),
        headers={"Content-Type": "application/octet-stream"},
    ) as resp:
        assert resp.status == 200
        return resp.headers["x-encrypted-param"], key


async def test_an_image_uploaded_encrypted_reaches_the_user_decrypted(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    msg = await first_message(world, client)
    image = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
    param, key = await upload(client, image)
    item = {
        "type": 2,
        "image_item": {
            "media": {
                "encrypt_query_param": param,
                "aes_key": base64.b64encode(key.hex().encode()).decode(),
                "encrypt_type": 1,
            },
            "mid_size": padded_size(len(image)),
        },
    }
    sent = await client.post(
        "sendmessage",
        {
            "msg": {
                "to_user_id": ALICE,
                "client_id": "img-1",
                "message_type": 2,
                "message_state": 2,
                "item_list": [item],
                "context_token": msg["context_token"],
            }
        },
    )
    assert sent["ret"] == 0
    [entry] = world.sent(to=ALICE)
    assert entry.media == {"kind": "image", "name": "image.jpg", "size": len(image)}
    assert world.message_data(entry.message_id) == image


async def test_a_users_file_is_downloaded_and_decrypted_with_the_items_key(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    ids = await world.say(
        ALICE,
        "",
        account="bot",
        media={"kind": "file", "name": "report.pdf", "size": 5000},
        settle=False,
    )
    msg = (await client.poll())["msgs"][0]
    [item] = msg["item_list"]
    assert item["type"] == 4 and item["file_item"]["file_name"] == "report.pdf"
    media = item["file_item"]["media"]
    param = quote(media["encrypt_query_param"], safe="")
    assert media["full_url"] == f"{server.cdn_base_url}/download?encrypted_query_param={param}"
    async with http.get(media["full_url"]) as resp:
        ciphertext = await resp.read()
    key = bytes.fromhex(base64.b64decode(media["aes_key"]).decode())
    assert decrypt(ciphertext, key) == world.message_data(ids[0])


async def test_a_voice_message_carries_its_transcript_and_an_image_its_hex_key(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    await world.say(ALICE, "call me", account="bot", media={"kind": "audio"}, settle=False)
    img_ids = await world.say(
        ALICE, "", account="bot", media={"kind": "image", "size": 900}, settle=False
    )
    voice, image = (await client.poll())["msgs"]
    assert [i["type"] for i in voice["item_list"]] == [3]
    assert voice["item_list"][0]["voice_item"]["text"] == "call me"
    image_item = image["item_list"][0]["image_item"]
    async with http.get(image_item["media"]["full_url"]) as resp:
        plain = decrypt(await resp.read(), bytes.fromhex(image_item["aeskey"]))
    assert plain == world.message_data(img_ids[0])


async def test_messages_said_as_one_reach_the_bot_as_one_message_of_all_their_items(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    bot = world.ilink_state.bot("bot")
    with bot.one_message():
        [voice] = await world.say(ALICE, "ripe?", account="bot", media={"kind": "audio"})
        await world.say(ALICE, "see", account="bot", media={"kind": "image"}, settle=False)
        assert (await client.poll())["msgs"] == []  # held back until the block ends
        with pytest.raises(ValueError, match="one_message"):
            await world.say("bob@im.wechat", "me too", account="bot")  # one user's only
    [msg] = (await client.poll())["msgs"]
    assert msg["message_id"] == world.ilink_state.wire_id(voice)
    assert [i["type"] for i in msg["item_list"]] == [3, 1, 2]  # voice, text, image
    with pytest.raises(RuntimeError, match="open already"), bot.one_message(), bot.one_message():
        pass


async def test_the_control_api_says_messages_together_as_one(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    said = {
        "from": ALICE,
        "account": "bot",
        "text": "which?",
        "together": [{"media": {"kind": "file", "name": "a.pdf"}}, {"media": {"kind": "video"}}],
    }
    bad = {**said, "together": [{"text": "?", "quote": "nope"}]}
    async with http.post(f"{server.base_url}sim/messages", json=bad) as resp:
        assert resp.status == 400 and "nope" in (await resp.json())["error"]
    async with http.post(f"{server.base_url}sim/messages", json=said) as resp:
        assert resp.status == 201 and len((await resp.json())["message_ids"]) == 3
    [msg] = (await client.poll())["msgs"]  # (the refused one said nothing)
    assert [i["type"] for i in msg["item_list"]] == [1, 4, 5]


async def test_a_quote_of_a_media_message_carries_its_media_item(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    [image] = await world.say(ALICE, account="bot", media={"kind": "image"}, settle=False)
    await world.say(ALICE, "what is it?", account="bot", quote=image, settle=False)
    _, quoting = (await client.poll())["msgs"]
    [item] = quoting["item_list"]
    assert item["text_item"]["text"] == "what is it?"
    assert item["ref_msg"]["svr_id"] == world.ilink_state.wire_id(image)
    quoted = item["ref_msg"]["message_item"]["image_item"]
    async with http.get(quoted["media"]["full_url"]) as resp:
        plain = decrypt(await resp.read(), bytes.fromhex(quoted["aeskey"]))
    assert plain == world.message_data(image)


async def test_the_cdn_refuses_an_upload_that_does_not_match_its_announcement(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    # fixed bytes and keys: with random ones, a wrong key gives valid padding now and then
    data = bytes(range(100))
    key = bytes.fromhex("00112233445566778899aabbccddeeff")
    wrong_key = encrypt(data, bytes(16))
    with pytest.raises(ValueError):  # (checked: this ciphertext does not unpad with the key)
        decrypt(wrong_key, key)
    answer = await client.post(
        "getuploadurl",
        {
            "filekey": "k1",
            "media_type": 3,
            "to_user_id": ALICE,
            "rawsize": 100,
            "rawfilemd5": hashlib.md5(data).hexdigest(),
            "filesize": padded_size(100),
            "aeskey": key.hex(),
        },
    )
    async with http.post(answer["upload_full_url"], data=wrong_key) as resp:
        assert resp.status == 400
        assert "decrypt" in resp.headers["x-error-message"]
    bad = await client.post("getuploadurl", {"filekey": "k2", "media_type": 3})
    assert bad["ret"] == -1 and "to_user_id" in bad["errmsg"]
    async with http.get(f"{server.cdn_base_url}/download?encrypted_query_param=nope") as resp:
        assert resp.status == 404


async def test_every_cdn_error_says_why_in_x_error_message(
    world: SimulatedWeChat,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The header Tencent's client (and ours) reads for why the CDN refused: an upload
    too large (aiohttp's plain 413) and a bug of the simulator (aiohttp's plain 500 page)
    had none."""
    monkeypatch.setattr(server_module, "MAX_UPLOAD_BYTES", 1024)
    async with await world.ilink_server(poll_hold_s=0.3) as server:
        upload = f"{server.cdn_base_url}/upload?encrypted_query_param=p&filekey=k"
        async with http.post(upload, data=bytes(4096)) as resp:
            assert resp.status == 413
            why = resp.headers["x-error-message"]
            assert why.startswith("Maximum request body size 1024 exceeded")
            assert await resp.text() == why
        download = f"{server.cdn_base_url}/download?encrypted_query_param=nope"
        async with http.get(download) as resp:
            why = resp.headers["x-error-message"]
            assert (resp.status, why) == (404, "no such file on the CDN")

        def broken(*args: object) -> object:
            raise RuntimeError("a bug in the simulator")

        monkeypatch.setattr(world.ilink_state.cdn, "ciphertext", broken)
        with caplog.at_level(logging.ERROR, logger="simulator.ilink"):
            async with http.get(download) as resp:
                assert resp.status == 500
                why = resp.headers["x-error-message"]
                assert why == "the simulator failed: RuntimeError: a bug in the simulator"
                assert await resp.text() == why
        assert any("/c2c/download" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_a_body_too_large_for_an_api_or_control_call_is_answered_in_its_shape(
    world: SimulatedWeChat, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "MAX_UPLOAD_BYTES", 1024)
    big = json.dumps({"text": "x" * 4096})
    async with await world.ilink_server(poll_hold_s=0.3) as server:
        async with http.post(f"{server.base_url}ilink/bot/get_bot_qrcode", data=big) as resp:
            answer = await resp.json()
            assert (resp.status, answer["ret"]) == (413, -1)
            assert answer["errmsg"].startswith("Maximum request body size 1024 exceeded")
        async with http.post(f"{server.base_url}sim/messages", data=big) as resp:
            answer = await resp.json()
            assert resp.status == 413
            assert answer["error"].startswith("Maximum request body size 1024 exceeded")


async def test_a_path_no_route_has_is_answered_in_its_part_s_shape(
    server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    """A path under /sim/ or /c2c/ that no route has (or a method the route does not take)
    was aiohttp's plain-text 404 or 405, where every other answer there is the control
    API's JSON or the CDN's x-error-message: a client read "404: Not Found" as no JSON."""
    base, cdn = server.base_url, server.cdn_base_url
    for method, url, status, says in [
        ("GET", f"{base}sim/nope", 404, "no route GET /sim/nope: GET /sim/ lists the routes"),
        ("POST", f"{base}sim/accounts/bot/jump", 404, "no route POST /sim/accounts/bot/jump"),
        ("GET", f"{base}sim/messages", 405, "GET /sim/messages: the route takes POST"),
    ]:
        async with http.request(method, url) as resp:
            assert resp.status == status, await resp.text()
            assert resp.content_type == "application/json"
            assert (await resp.json())["error"].startswith(says)
            if status == 405:
                assert resp.headers["Allow"] == "POST"
    for method, url, status, says in [
        ("GET", f"{cdn}/nope", 404, "no route GET /c2c/nope: the CDN's routes are POST "
         "/c2c/upload and GET /c2c/download"),
        ("GET", f"{cdn}/upload", 405, "GET /c2c/upload: the route takes POST"),
    ]:  # fmt: skip
        async with http.request(method, url) as resp:
            assert resp.status == status, await resp.text()
            assert resp.headers["x-error-message"] == says
            assert await resp.text() == says
    # a route's own 404 is its own
    async with http.get(f"{base}sim/files/nope") as resp:
        assert (resp.status, await resp.json()) == (404, {"error": "no such message"})


async def test_an_image_or_video_upload_names_its_thumbnail_or_says_it_needs_none(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    # Tencent's types (api/types.ts, GetUploadUrlReq): thumb_rawsize, thumb_rawfilemd5 and
    # thumb_filesize are required for an image or a video, unless no_need_thumb is true
    client = await logged_in(world, server, http)
    data, thumb = os.urandom(3000), os.urandom(200)
    body = {
        "filekey": "k1",
        "to_user_id": ALICE,
        "rawsize": len(data),
        "rawfilemd5": hashlib.md5(data).hexdigest(),
        "filesize": padded_size(len(data)),
        "aeskey": os.urandom(16).hex(),
    }
    for media_type in (1, 2):
        bad = await client.post("getuploadurl", {**body, "media_type": media_type})
        assert bad["ret"] == -1 and "thumb_rawsize" in bad["errmsg"]
    assert (await client.post("getuploadurl", {**body, "media_type": 3}))["ret"] == 0
    unneeded = await client.post("getuploadurl", {**body, "media_type": 1, "no_need_thumb": True})
    assert unneeded["ret"] == 0 and not unneeded.get("thumb_upload_param")
    thumbed = await client.post(
        "getuploadurl",
        {
            **body,
            "media_type": 1,
            "thumb_rawsize": len(thumb),
            "thumb_rawfilemd5": hashlib.md5(thumb).hexdigest(),
            "thumb_filesize": padded_size(len(thumb)),
        },
    )
    assert thumbed["ret"] == 0 and thumbed["thumb_upload_param"]
    key = bytes.fromhex(body["aeskey"])
    for param, plain in ((thumbed["upload_param"], data), (thumbed["thumb_upload_param"], thumb)):
        url = f"{server.cdn_base_url}/upload?encrypted_query_param={param}&filekey=k1"
        async with http.post(url, data=encrypt(plain, key)) as resp:
            assert resp.status == 200 and resp.headers["x-encrypted-param"]


async def test_a_bot_voice_item_is_accepted_and_never_delivered(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    msg = await first_message(world, client)
    param, key = await upload(client, b"#!SILK_V3" + os.urandom(500), media_type=4)
    voice = {
        "type": 3,
        "voice_item": {
            "media": {"encrypt_query_param": param, "aes_key": base64.b64encode(key).decode()}
        },
    }
    body = {
        "msg": {
            "to_user_id": ALICE,
            "client_id": "v1",
            "message_type": 2,
            "message_state": 2,
            "item_list": [voice],
            "context_token": msg["context_token"],
        }
    }
    assert (await client.post("sendmessage", body))["ret"] == 0
    assert world.sent(to=ALICE) == []
    assert any(e["event"] == "voice_dropped" for e in world.events_log)


# ------------------------------------------------------------------ faults


async def test_an_expired_session_answers_errcode_14_until_a_new_login(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    old = client.token
    world.fault("logout", "bot")
    expired = await client.poll()
    assert (expired["ret"], expired["errcode"]) == (-14, -14)
    await world.say(ALICE, "while away", account="bot", settle=False)
    await client.login(world)
    assert client.token != old
    got = await client.poll()
    assert [m["item_list"][0]["text_item"]["text"] for m in got["msgs"]] == ["while away"]


async def test_a_rate_limit_answers_ret_2_and_sends_nothing(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    msg = await first_message(world, client)
    world.fault("rate_limit", "bot")
    limited = await client.send_text(ALICE, "too fast", msg["context_token"])
    assert limited["ret"] == -2
    assert world.texts() == []
    assert (await client.send_text(ALICE, "later", msg["context_token"]))["ret"] == 0
    assert world.texts() == ["later"]


async def test_a_duplicate_delivery_comes_a_few_seconds_later_with_the_same_id(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    from simulator.ilink import state

    client = await logged_in(world, server, http)
    world.fault("duplicate_next", "bot")
    original = state.DUPLICATE_AFTER_S
    state.DUPLICATE_AFTER_S = 0.2
    try:
        await world.say(ALICE, "twice", account="bot", settle=False)
    finally:
        state.DUPLICATE_AFTER_S = original
    first = await client.poll()
    seen = list(first["msgs"])
    buf = first["get_updates_buf"]
    while len(seen) < 2:
        more = await client.poll(buf)
        seen += more["msgs"]
        buf = more["get_updates_buf"]
    assert len({m["message_id"] for m in seen}) == 1
    assert len({m["seq"] for m in seen}) == 2


async def test_a_slow_poll_answers_after_the_client_gave_up_and_loses_nothing(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    await world.say(ALICE, "patience", account="bot", settle=False)
    world.fault("slow_poll", "bot", seconds=1.0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.poll(), 0.2)
    got = await client.poll()
    assert [m["item_list"][0]["text_item"]["text"] for m in got["msgs"]] == ["patience"]


async def test_send_faults_answer_as_a_broken_server_would(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    msg = await first_message(world, client)
    world.fault("send_fail", "bot")
    with pytest.raises(HttpStatus) as unavailable:  # nothing was taken
        await client.send_text(ALICE, "lost", msg["context_token"])
    assert unavailable.value.status == 503
    assert json.loads(unavailable.value.body)["errmsg"] == "service unavailable"
    world.fault("send_lost_reply", "bot")
    with pytest.raises(aiohttp.ServerDisconnectedError):  # accepted, the answer never came
        await client.send_text(ALICE, "went out", msg["context_token"])
    assert world.texts() == ["went out"]
    world.fault("disconnect", "bot")
    assert (await client.poll(""))["ret"] == 0  # the fault cut polls open at the time only


async def test_a_retry_under_the_same_client_id_is_answered_and_not_sent_twice(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    msg = await first_message(world, client)
    world.fault("send_lost_reply", "bot")
    with pytest.raises(aiohttp.ServerDisconnectedError):  # accepted, the answer never came
        await client.send_text(ALICE, "once", msg["context_token"], client_id="c-1")
    again = await client.send_text(ALICE, "once", msg["context_token"], client_id="c-1")
    assert again["ret"] == 0 and again["message_id"]
    assert world.texts(to=ALICE) == ["once"]
    other = await client.send_text(ALICE, "twice", msg["context_token"], client_id="c-2")
    assert other["message_id"] != again["message_id"]


async def test_a_lost_reply_is_the_connection_closed_before_any_byte_of_an_answer(
    world: SimulatedWeChat,
    server: ILinkServer,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What a client in any language sees of send_lost_reply: no status line, no byte, the
    connection closed; the message went out all the same, and nothing is logged."""
    client = await logged_in(world, server, http)
    msg = await first_message(world, client)
    world.fault("send_lost_reply", "bot")
    body = json.dumps(
        {
            "msg": {
                "to_user_id": ALICE,
                "context_token": msg["context_token"],
                "client_id": "c-raw",
                "message_type": 2,
                "item_list": [{"type": 1, "text_item": {"text": "went out"}}],
            }
        }
    ).encode()
    head = (
        f"POST /ilink/bot/sendmessage HTTP/1.1\r\nHost: {server.host}\r\n"
        "Content-Type: application/json\r\nAuthorizationType: ilink_bot_token\r\n"
        f"Authorization: Bearer {client.token}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with caplog.at_level(logging.DEBUG):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(head.encode() + body)
            answer = await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()
    assert answer == b""
    assert world.texts(to=ALICE) == ["went out"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# ------------------------------------------------------------------ bad requests


async def test_bad_requests_are_answered_with_what_to_change(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    async with http.post(f"{server.base_url}ilink/bot/nosuchcall", json={}) as resp:
        assert resp.status == 404
    async with http.post(
        f"{server.base_url}ilink/bot/getupdates", data="{not json", headers=client.headers()
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["errmsg"] == "the body is not JSON"
    wrong = Client(http, server.base_url, token="bot@im.bot:forged")
    answer = await wrong.poll()
    assert (answer["ret"], answer["errmsg"]) == (-14, "session timeout")
    missing = await Client(http, server.base_url).poll()
    assert missing["ret"] == -1 and "Bearer" in missing["errmsg"]
    assert client.token not in json.dumps(world.events_log)


async def test_nan_or_infinity_in_a_calls_body_is_refused_as_no_real_server_reads_it(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    msg = await first_message(world, client)
    raw = json.dumps(
        {"msg": {"to_user_id": ALICE, "client_id": "c1", "message_type": 2,
                 "context_token": msg["context_token"], "item_list": ["VOICE"]}}
    ).replace('"VOICE"', '{"type": 3, "voice_item": {"playtime": Infinity}}')  # fmt: skip
    async with http.post(
        f"{server.base_url}ilink/bot/sendmessage", data=raw, headers=client.headers()
    ) as resp:
        assert resp.status == 400
        answer = await resp.json()
    assert answer["errmsg"] == (
        "msg.item_list.0.voice_item.playtime: Infinity is not standard JSON: send a finite number"
    )
    assert world.sent() == []


async def test_malformed_items_are_answered_with_what_is_wrong(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    msg = await first_message(world, client)
    for item, said in [
        ({"type": 1, "text_item": "oops"}, "text_item"),
        ({"type": 1, "text_item": [1]}, "text_item"),
        ({"type": [1]}, "unknown item type"),
        ({"type": 2, "image_item": "x"}, "image_item"),
    ]:
        body = {
            "to_user_id": ALICE,
            "client_id": f"c-{os.urandom(4).hex()}",
            "message_type": 2,
            "context_token": msg["context_token"],
            "item_list": [item],
        }
        answer = await client.post("sendmessage", {"msg": body})
        assert answer["ret"] == -1 and said in answer["errmsg"], (item, answer)
    assert world.texts() == []


async def test_json_nested_too_deep_is_refused_as_any_bad_request(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    deep = base64.b64encode(b"[" * 100_000 + b"]" * 100_000).decode()
    assert (await client.poll(deep))["ret"] == 0  # a cursor it never gave: ignored
    async with http.post(
        f"{server.base_url}ilink/bot/getupdates",
        data="[" * 100_000 + "]" * 100_000,
        headers=client.headers(),
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["errmsg"] == "the body is not JSON"


async def test_an_unexpected_error_is_answered_as_ilinks_json_and_logged(
    world: SimulatedWeChat,
    server: ILinkServer,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from simulator.ilink import server as ilink_server

    def broken(*args: object) -> object:
        raise RuntimeError("a bug in the simulator")

    client = await logged_in(world, server, http)
    msg = await first_message(world, client)
    monkeypatch.setattr(ilink_server, "read_outbound", broken)
    with caplog.at_level(logging.ERROR, logger="simulator.ilink"):
        async with http.post(
            f"{server.base_url}ilink/bot/sendmessage",
            data=json.dumps({"msg": {"to_user_id": ALICE, "context_token": msg["context_token"]}}),
            headers=client.headers(),
        ) as resp:
            assert resp.status == 500
            answer = await resp.json()
    assert answer["ret"] == -1 and "a bug in the simulator" in answer["errmsg"]
    assert any("sendmessage" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_asking_for_another_address_than_the_running_servers_is_an_error(
    world: SimulatedWeChat, server: ILinkServer
) -> None:
    """``world.ilink_server(port=...)`` returned the running server, on another port,
    without a word: a client told the port asked for found nothing there."""
    import socket

    assert await world.ilink_server() is server  # (port 0: any port, the running one's)
    assert await world.ilink_server(port=server.port) is server
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    running = f"the world's iLink server runs on 127.0.0.1:{server.port} already"
    for asked in ({"port": free}, {"host": "::1"}, {"host": "::1", "port": server.port}):
        with pytest.raises(ValueError, match=running):
            await world.ilink_server(**asked)
    assert world.ilink_state.server is server  # (still the one running)
    await server.close()
    async with await world.ilink_server(port=free) as other:  # once it is closed
        assert other.port == free and other.base_url == f"http://127.0.0.1:{free}/"


async def test_asking_for_another_poll_hold_than_the_running_servers_is_an_error(
    world: SimulatedWeChat, server: ILinkServer
) -> None:
    """``world.ilink_server(poll_hold_s=...)`` returned the running server, holding
    ``getupdates`` for its own time, without a word: a test asking for a quick hold got
    the running one's. The same rule as the address: left out, or the running one's."""
    assert server.poll_hold_s == 0.3
    assert await world.ilink_server() is server  # (left out: the running one's)
    assert await world.ilink_server(poll_hold_s=0.3, port=server.port) is server
    with pytest.raises(ValueError, match=r"poll_hold_s=0\.3.*not with poll_hold_s=5\b"):
        await world.ilink_server(poll_hold_s=5)
    assert world.ilink_state.server is server and server.poll_hold_s == 0.3
    await server.close()
    async with await world.ilink_server(poll_hold_s=5) as other:  # once it is closed
        assert other.poll_hold_s == 5


# ------------------------------------------------------------------ the virtual clock


async def test_answers_are_dated_by_the_worlds_clock(http: aiohttp.ClientSession) -> None:
    world = SimulatedWeChat(seed=5)  # its own virtual clock, years before today
    world.add_account("bot", transport="ilink")
    async with await world.ilink_server() as server:
        await world.advance(3600)
        async with http.post(f"{server.base_url}ilink/bot/get_bot_qrcode", json={}) as resp:
            dated = email.utils.parsedate_to_datetime(resp.headers["Date"]).timestamp()
    assert abs(dated - world.clock.now()) < 1  # the header's resolution


async def test_long_polls_live_in_the_worlds_virtual_time(http: aiohttp.ClientSession) -> None:
    world = SimulatedWeChat(seed=5)  # its own virtual clock
    world.add_account("bot", transport="ilink")
    async with await world.ilink_server() as server:
        client = Client(http, server.base_url)
        qr = asyncio.ensure_future(client.post("get_bot_qrcode?bot_type=3", {}))
        await world.login("bot")
        status = await client.get(f"get_qrcode_status?qrcode={(await qr)['qrcode']}")
        client.token = status["bot_token"]
        poll = await open_poll(world, client)
        await world.run_until_idle()  # an open poll keeps no world busy
        assert not poll.done()
        await world.advance(31)  # past the 30 s hold of the world's time
        assert (await asyncio.wait_for(poll, 5))["msgs"] == []
        poll = await open_poll(world, client)
        await world.say(ALICE, "in virtual time", account="bot")
        got = await asyncio.wait_for(poll, 5)
        assert got["msgs"][0]["item_list"][0]["text_item"]["text"] == "in virtual time"
        assert got["msgs"][0]["create_time_ms"] == int(world.clock.now() * 1000)


async def test_the_control_api_waits_for_the_next_message_a_bot_sends(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    msg = await first_message(world, client)
    url = f"{server.base_url}sim/sent?account=bot&since=0&wait_ms=10000"
    waiting = asyncio.ensure_future(http.get(url))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await client.send_text(ALICE, "awaited", msg["context_token"])
    async with await asyncio.wait_for(waiting, 5) as resp:
        assert [e["text"] for e in await resp.json()] == ["awaited"]
    async with http.get(f"{server.base_url}sim/sent?account=bot&since=1&wait_ms=10") as resp:
        assert await resp.json() == []  # nothing more within the wait


async def test_a_disconnect_cuts_the_open_poll_and_silence_holds_messages_back(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    server.poll_hold_s = 30.0
    client = await logged_in(world, server, http)
    poll = await open_poll(world, client)
    world.fault("disconnect", "bot")
    with pytest.raises(HttpStatus, match="connection reset") as cut:
        await asyncio.wait_for(poll, 5)
    assert cut.value.status == 502
    server.poll_hold_s = 0.2
    world.fault("heartbeat_silence", "bot", seconds=0.5)
    await world.say(ALICE, "held back", account="bot", settle=False)
    assert (await client.poll())["msgs"] == []  # the poll answers nothing while silent
    texts: list[str] = []
    while not texts:
        texts = [m["item_list"][0]["text_item"]["text"] for m in (await client.poll())["msgs"]]
    assert texts == ["held back"]


async def test_a_cursor_this_server_never_gave_starts_after_the_acknowledged_messages(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    await world.say(ALICE, "one", account="bot", settle=False)
    first = await client.poll()
    await client.poll(first["get_updates_buf"])  # acknowledges "one"
    await world.say(ALICE, "two", account="bot", settle=False)
    # the same bot and number from another run of the server (``simulator serve`` again)
    mark = json.loads(base64.b64decode(first["get_updates_buf"]))
    other_run = {**mark, "base": mark["base"] + 10**12}
    for garbage in (
        "not base64!",
        base64.b64encode(b'{"bot": "other@im.bot", "seq": 1}').decode(),
        base64.b64encode(json.dumps(other_run).encode()).decode(),
    ):
        got = await client.poll(garbage)
        assert [m["item_list"][0]["text_item"]["text"] for m in got["msgs"]] == ["two"]


async def test_a_world_numbers_its_messages_alike_in_every_run(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    msg = await first_message(world, client)
    assert msg["message_id"] == WIRE_ID_BASE + 1  # deterministic in process
    # (``simulator serve`` starts each process's numbers past the ones before)
    assert WIRE_ID_BASE < process_id_base() <= process_id_base() < 2**63


async def test_a_quote_arrives_cut_with_the_quoted_messages_id(
    world: SimulatedWeChat, server: ILinkServer, http: aiohttp.ClientSession
) -> None:
    client = await logged_in(world, server, http)
    msg = await first_message(world, client)
    answer = "A whole answer, much longer than what iLink keeps of a quote."
    sent = await client.send_text(ALICE, answer, msg["context_token"])
    [bot_message] = world.sent(to=ALICE)
    await world.say(ALICE, "why?", account="bot", quote=bot_message.message_id, settle=False)
    [quoting] = (await client.poll(""))["msgs"][-1:]
    [item] = quoting["item_list"]
    assert item["text_item"]["text"] == "why?"
    assert item["ref_msg"]["svr_id"] == sent["message_id"]
    assert item["ref_msg"]["message_item"]["text_item"]["text"] == answer[:20]
    with pytest.raises(KeyError, match="no message 'nope' to quote"):
        await world.say(ALICE, "?", account="bot", quote="nope")


async def test_a_world_whose_phone_scans_by_itself_logs_a_client_in(
    http: aiohttp.ClientSession,
) -> None:
    world = SimulatedWeChat(seed=3, clock=RealClock(), auto_scan_s=0.05)
    world.add_account("bot", transport="ilink")
    async with await world.ilink_server(poll_hold_s=0.3) as server:
        client = Client(http, server.base_url)
        qr = await client.post("get_bot_qrcode?bot_type=3", {})
        status = {"status": "wait"}
        while status["status"] == "wait":
            status = await client.get(f"get_qrcode_status?qrcode={qr['qrcode']}")
        assert status["status"] == "confirmed"
        assert status["ilink_bot_id"] == world.accounts["bot"].wxid


async def test_codes_asked_at_once_on_the_shared_base_log_in_different_accounts(
    http: aiohttp.ClientSession,
) -> None:
    # one gateway with several iLink accounts on one baseUrl, and `simulator serve
    # --scan-after-ms`: each client's code goes to its own account, and no login ends
    # another. The phone scans in the world's virtual time: both codes are asked before
    # it scans either, however slow the machine
    world = SimulatedWeChat(seed=3, auto_scan_s=1.0)
    world.add_account("one", transport="ilink")
    world.add_account("two", transport="ilink")
    qr = world.ilink_state.qr
    async with await world.ilink_server(poll_hold_s=0.3) as server:
        clients = [Client(http, server.base_url) for _ in range(2)]
        codes = [(await c.post("get_bot_qrcode?bot_type=3", {}))["qrcode"] for c in clients]
        assert [qr.codes[c].status for c in codes] == ["wait", "wait"]
        await world.clock.advance(1.0)  # the phone scans and confirms both
        assert [qr.codes[c].status for c in codes] == ["confirmed", "confirmed"]
        confirmed, tokens = [], []
        for client, code in zip(clients, codes, strict=True):
            status = await client.get(f"get_qrcode_status?qrcode={code}")
            assert status["status"] == "confirmed"
            confirmed.append(status["ilink_bot_id"])
            tokens.append(status["bot_token"])
        assert sorted(confirmed) == sorted(a.wxid for a in world.accounts.values())
        assert all(world.ilink_state.bot_for_token(t) is not None for t in tokens)


@contextlib.asynccontextmanager
async def one_logged_in(
    http: aiohttp.ClientSession,
) -> AsyncIterator[tuple[SimulatedWeChat, ILinkServer, Client]]:
    """Two iLink accounts on one server's shared base, "one" logged in by a running client."""
    world = SimulatedWeChat(seed=3, clock=RealClock())
    world.add_account("one", transport="ilink")
    world.add_account("two", transport="ilink")
    async with await world.ilink_server(poll_hold_s=0.3) as server:
        running = Client(http, server.base_url)
        await running.login(world, "one")
        yield world, server, running


async def test_world_login_of_an_account_logged_in_leaves_another_clients_code_alone(
    http: aiohttp.ClientSession,
) -> None:
    # two accounts on the shared base: "one"'s client runs, "two"'s shows a code. Scanned
    # as "one", that code would end the running client's token (and "two" never logs in)
    async with one_logged_in(http) as (world, server, running):
        other = await Client(http, server.base_url).post("get_bot_qrcode?bot_type=3", {})
        assert await world.login("one", within_s=1) is None  # nothing of its own to scan
        assert world.ilink_state.qr.codes[other["qrcode"]].status == "wait"
        assert world.ilink_state.bot_for_token(running.token) is world.ilink_state.bot("one")
        # a code asked with one of "one"'s tokens is its client's: that one is scanned
        # (the token is valid still: binded_redirect, and the client keeps it)
        mine = await Client(http, server.base_url).post(
            "get_bot_qrcode?bot_type=3", {"local_token_list": [running.token]}
        )
        await world.login("one", within_s=1)
        assert world.ilink_state.qr.codes[mine["qrcode"]].status == "binded_redirect"
        assert world.ilink_state.qr.codes[other["qrcode"]].status == "wait"
        # and one asked on its own base
        own = await Client(http, server.base_url_for("one")).post("get_bot_qrcode?bot_type=3", {})
        await world.login("one", within_s=1)
        assert world.ilink_state.qr.codes[own["qrcode"]].status == "confirmed"
        assert world.ilink_state.qr.codes[other["qrcode"]].status == "wait"
        await world.login("two", within_s=1)  # "two"'s own phone takes it
        assert world.ilink_state.qr.codes[other["qrcode"]].status == "confirmed"
        assert world.ilink_state.qr.codes[other["qrcode"]].account_id == "two"


async def test_world_login_of_an_account_not_logged_in_leaves_a_code_tied_to_another(
    http: aiohttp.ClientSession,
) -> None:
    # a code asked with "one"'s token is "one"'s client's: "two"'s phone takes the free one
    async with one_logged_in(http) as (world, server, running):
        tied = await Client(http, server.base_url).post(
            "get_bot_qrcode?bot_type=3", {"local_token_list": [running.token]}
        )
        free = await Client(http, server.base_url).post("get_bot_qrcode?bot_type=3", {})
        await world.login("two", within_s=1)
        codes = world.ilink_state.qr.codes
        assert codes[tied["qrcode"]].status == "wait"
        assert (codes[free["qrcode"]].status, codes[free["qrcode"]].account_id) == (
            "confirmed",
            "two",
        )
