"""Testing an iLink client against the simulator: in process, and as a standalone server."""

# --8<-- [start:client]

import aiohttp
import pytest

from simulator import SimulatedWeChat
from simulator.ilink.process import serve_process


class ILinkClient:
    """The few calls of an iLink bot that this example makes (yours is the code under test)."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http, self.base_url, self.token = http, base_url, ""

    async def call(self, endpoint: str, body: dict) -> dict:
        headers = {"AuthorizationType": "ilink_bot_token"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = f"{self.base_url}ilink/bot/{endpoint}"
        async with self.http.post(url, json=body, headers=headers) as resp:
            return await resp.json()

    async def status(self, qrcode: str) -> dict:
        url = f"{self.base_url}ilink/bot/get_qrcode_status?qrcode={qrcode}"
        async with self.http.get(url) as resp:
            return await resp.json()


# --8<-- [end:client]


# --8<-- [start:in-process]
@pytest.mark.asyncio  # no wechat fixture: marked for pytest-asyncio
async def test_a_client_logs_in_and_answers_a_user() -> None:
    world = SimulatedWeChat(seed=1)
    world.add_account("bot", transport="ilink")
    async with await world.ilink_server() as server, aiohttp.ClientSession() as http:
        client = ILinkClient(http, server.base_url)
        qr = await client.call("get_bot_qrcode?bot_type=3", {"local_token_list": []})
        await world.login("bot")  # the owner's phone scans and confirms
        client.token = (await client.status(qr["qrcode"]))["bot_token"]

        await world.say("alice@im.wechat", "hello", account="bot")
        updates = await client.call("getupdates", {"get_updates_buf": ""})
        [msg] = updates["msgs"]
        reply = {
            "to_user_id": msg["from_user_id"],
            "context_token": msg["context_token"],
            "client_id": "reply-1",
            "message_type": 2,
            "message_state": 2,
            "item_list": [{"type": 1, "text_item": {"text": "hi Alice"}}],
        }
        assert (await client.call("sendmessage", {"msg": reply}))["ret"] == 0

    assert world.texts(to="alice@im.wechat") == ["hi Alice"]


# --8<-- [end:in-process]


# --8<-- [start:standalone]
@pytest.mark.asyncio
async def test_the_standalone_server_is_driven_over_http() -> None:
    # `wechat-sdk simulator serve --port 0` in a process of its own, stopped after the block
    async with serve_process() as served, aiohttp.ClientSession() as http:
        base = served.base_url  # from its first line: "iLink server at http://..."
        client = ILinkClient(http, base)
        qr = await client.call("get_bot_qrcode?bot_type=3", {})
        await http.post(f"{base}sim/accounts/bot/login")  # the phone
        client.token = (await client.status(qr["qrcode"]))["bot_token"]

        said = {"from": "alice@im.wechat", "account": "bot", "text": "hello"}
        await http.post(f"{base}sim/messages", json=said)  # a user writes
        [msg] = (await client.call("getupdates", {"get_updates_buf": ""}))["msgs"]
        assert msg["item_list"][0]["text_item"]["text"] == "hello"

        async with http.get(f"{base}sim/sent?account=bot") as resp:
            assert await resp.json() == []  # the bot has not answered yet


# --8<-- [end:standalone]
