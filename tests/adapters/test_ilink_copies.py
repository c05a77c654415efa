"""A gateway on an iLink account, against a scripted server, when iLink delivers a user
message again under a **new** ``message_id`` (the same sender, ``create_time_ms`` and
items): answered once, whether the gateway restarted between the two copies or not, in
the store's SQLite database and on its Redis server; the copy counted in the account's
drops as a duplicate, and its ``context_token`` the peer's latest."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from ilink_script import Script, scripted
from waiting import until

from wechat_sdk import AgentTurn, Gateway, parse_config
from wechat_sdk.adapters.ilink.session import KeptLogin, SessionFile

pytestmark = pytest.mark.slow  # real HTTP on the real clock

BOT = "0123456789ab@im.bot"
ALICE = "alice@im.wechat"


def msg(mid: int, words: str, said_ms: int, token: str) -> dict[str, Any]:
    return {
        "message_id": mid,
        "from_user_id": ALICE,
        "to_user_id": BOT,
        "message_type": 1,
        "context_token": token,
        "create_time_ms": said_ms,
        "item_list": [{"type": 1, "msg_id": f"item-{mid}", "text_item": {"text": words}}],
    }


async def agent(turn: AgentTurn) -> str:
    return f"echo: {turn.text}"


class Store:
    """Where the gateway keeps its state: the SQLite store (its login in a file) or the
    Redis store (its login in Redis)."""

    def __init__(self, kind: str, request: pytest.FixtureRequest) -> None:
        self.kind, self.request = kind, request

    def config(self, script: Script) -> Any:
        store = ""
        if self.kind == "redis":
            url = self.request.getfixturevalue("redis_url")
            namespace = self.request.getfixturevalue("redis_namespace")
            store = f'store: {{ kind: "redis", url: "{url}", namespace: "{namespace}" }},'
        return parse_config(
            f"""{{ channels: {{ wechat: {{
                puppet: "ilink",
                puppetOptions: {{ baseUrl: "{script.base_url}",
                                  cdnBaseUrl: "{script.base_url}/c2c" }},
                dmPolicy: "open", allowFrom: ["*"], qrCode: false, pacing: false, {store}
            }} }} }}"""
        )

    def keep_login(self, state_dir: Path) -> None:
        login = KeptLogin(BOT, "tok-copies", "owner@im.wechat")
        if self.kind == "redis":
            from wechat_sdk.adapters.ilink.redis_state import RedisSessionFile
            from wechat_sdk.puppets import SharedRedis

            shared = SharedRedis(
                self.request.getfixturevalue("redis_url"),
                self.request.getfixturevalue("redis_namespace"),
            )
            kept = RedisSessionFile(shared, "default")
            kept.keep(login)
            kept.close()
        else:
            SessionFile(state_dir / "accounts" / "default").keep(login)


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest) -> Store:
    return Store(request.param, request)


async def serving(store: Store, script: Script, state_dir: Path) -> Gateway:
    gateway = Gateway(store.config(script), agent=agent, state_dir=state_dir)
    await gateway.start()
    await until("ready", lambda: gateway.status()[0].lifecycle == "ready")
    return gateway


def sent(script: Script) -> list[tuple[str, str]]:
    """What the bot sent: each text, and the context_token it carried."""
    out = []
    for request in script.asked("sendmessage"):
        body = request.body["msg"]
        out.append((body["item_list"][0]["text_item"]["text"], body["context_token"]))
    return out


def polled_past(script: Script, cursor: str) -> bool:
    """Whether the server was polled with ``cursor``: the batch before it was taken in."""
    return any(r.body.get("get_updates_buf") == cursor for r in script.asked("getupdates"))


def duplicates(gateway: Gateway) -> int:
    return gateway.status()[0].drops.get("duplicate", 0)


@pytest.mark.parametrize("restart", [False, True], ids=["same-run", "after-a-restart"])
async def test_a_copy_under_a_new_id_is_answered_once_and_counted_as_a_duplicate(
    store: Store, tmp_path: Path, restart: bool
) -> None:
    said = int(time.time() * 1000)
    async with scripted() as script:
        store.keep_login(tmp_path)
        gateway = await serving(store, script, tmp_path)
        try:
            script.batch(msg(1, "hello", said, "ctx-1"), cursor="c1")
            await until("the answer", lambda: sent(script) == [("echo: hello", "ctx-1")])
            if restart:
                await gateway.close()
                gateway = await serving(store, script, tmp_path)
                # (the closed one's last poll, still held by the server, takes nothing more)
                polls = len(script.asked("getupdates"))
                await until("polls", lambda: len(script.asked("getupdates")) > polls + 1)
            counted = duplicates(gateway)  # (a start hands the last hour's on again)
            script.batch(msg(2, "hello", said, "ctx-2"), cursor="c2")  # the copy
            await until("the poll after the copy", lambda: polled_past(script, "c2"))
            await gateway.send(ALICE, "a word")  # with the newest token the server gave
            script.batch(msg(3, "after", said + 5000, "ctx-3"), cursor="c3")
            await until("the next answer", lambda: ("echo: after", "ctx-3") in sent(script))
            assert sent(script) == [
                ("echo: hello", "ctx-1"),
                ("a word", "ctx-2"),
                ("echo: after", "ctx-3"),
            ]
            assert duplicates(gateway) == counted + 1
        finally:
            await gateway.close()
