"""An iLink login whose phone asks for the number it shows (``need_verifycode``), end to
end: the real iLink adapter over HTTP to the simulator's iLink server, on the real clock,
the number given through the gateway's HTTP API as a person would, reading it on the
phone. A wrong number is said (the answer, and the account's state) and asked again; the
right one logs the account in, and it answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ilink_worlds import ilink_world
from waiting import until

from simulator import SimulatedWeChat
from simulator.pytest_plugin import WeChatHarness
from wechat_sdk import AgentTurn, Gateway

pytestmark = pytest.mark.slow  # real HTTP on the real clock

ALICE = "alice@im.wechat"
TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIG: dict[str, Any] = {
    "channels": {
        "wechat": {
            "puppet": "ilink",
            "dmPolicy": "open",
            "allowFrom": ["*"],
            "pacing": False,
            "qrCode": False,
            "api": {"port": 0, "token": TOKEN},
        }
    }
}


async def echo(turn: AgentTurn) -> str:
    return f"echo: {turn.text}"


@pytest.fixture
async def world() -> AsyncIterator[SimulatedWeChat]:
    async with ilink_world(5, {ALICE: "Alice"}) as made:
        yield made


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def give(
    http: aiohttp.ClientSession, gateway: Gateway, body: Any, account: str = "default"
) -> tuple[int, dict[str, Any]]:
    assert gateway.http is not None and gateway.http.api_url
    url = f"{gateway.http.api_url}/v1/accounts/{account}/login/verify-code"
    async with http.post(url, json=body, headers=AUTH) as response:
        answer: dict[str, Any] = await response.json()
        return response.status, answer


def wrong_for(number: str) -> str:
    return f"{(int(number) + 1) % 1_000_000:06d}"


async def test_a_wrong_number_is_said_and_asked_again_and_the_right_one_logs_in(
    world: SimulatedWeChat, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    gateway = world.gateway(CONFIG, echo, state_dir=tmp_path)
    await gateway.start()
    try:
        # the owner scans, and the phone asks for the number it shows
        shown = await world.login("default", within_s=15, verify_code=True)
        assert shown is not None and shown == world.phone_shows("default")
        await until(
            "the state asks for the number",
            lambda: (
                gateway.status()[0].state == "waiting_for_scan: enter the number the phone shows"
            ),
        )
        code, answer = await give(http, gateway, {"code": wrong_for(shown)})
        assert (code, answer["outcome"]) == (200, "wrong")
        assert answer["message"].startswith("wrong number: it is not the one the phone shows")
        status = gateway.status()[0]
        assert status.state == "waiting_for_scan: wrong number: enter the number the phone shows"
        assert world.phone_shows("default") == shown  # the same number, asked again

        code, answer = await give(http, gateway, {"code": shown})
        assert (code, answer) == (
            200,
            {
                "accountId": "default",
                "outcome": "accepted",
                "message": "the number is right: the login goes on",
            },
        )
        await until("ready", lambda: gateway.status()[0].lifecycle == "ready")
        await world.say(ALICE, "hello after the number", settle=False)
        await until("the answer", lambda: bool(world.texts(to=ALICE)))
        assert world.texts(to=ALICE) == ["echo: hello after the number"]

        # logged in: no login asks for a number any more
        code, answer = await give(http, gateway, {"code": shown})
        assert code == 409 and answer["code"] == "verify_code_not_asked"
        assert "is not waiting for a number" in answer["error"]
    finally:
        await gateway.close()
    checks = [e for e in world.events_log if e["event"] == "verify_code"]
    assert [e["right"] for e in checks] == [False, True]


async def test_three_wrong_numbers_block_the_code_and_a_new_qr_code_follows(
    world: SimulatedWeChat, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    gateway = world.gateway(CONFIG, echo, state_dir=tmp_path)
    await gateway.start()
    try:
        shown = await world.login("default", within_s=15, verify_code=True)
        assert shown is not None
        first_qr = gateway.status()[0].qr_url
        outcomes = []
        for _ in range(3):
            await until(
                "asked for the number",
                lambda: "enter the number the phone shows" in gateway.status()[0].state,
            )
            _, answer = await give(http, gateway, {"code": wrong_for(shown)})
            outcomes.append(answer["outcome"])
        assert outcomes == ["wrong", "wrong", "blocked"]
        assert answer["message"].startswith("too many wrong numbers")
        await until(
            "a new QR code",
            lambda: (
                gateway.status()[0].qr_url not in (None, first_qr)
                and gateway.status()[0].state == "waiting_for_scan"
            ),
        )
        assert gateway.status()[0].last_error == "too many wrong numbers: a new QR code follows"
        await world.login("default", within_s=15)  # the new code, scanned and confirmed
        await until("ready", lambda: gateway.status()[0].lifecycle == "ready")
    finally:
        await gateway.close()


async def test_a_bad_number_and_an_account_that_is_not_running_are_clear_errors(
    world: SimulatedWeChat, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    gateway = world.gateway(CONFIG, echo, state_dir=tmp_path)
    await gateway.start()
    try:
        await world.login("default", within_s=15, verify_code=True)
        await until(
            "asked for the number",
            lambda: "enter the number the phone shows" in gateway.status()[0].state,
        )
        code, answer = await give(http, gateway, {"code": "twelve"})
        assert code == 400 and answer["code"] == "invalid_request"
        assert "digits only" in answer["error"]
        code, answer = await give(http, gateway, {"code": "123456"}, account="other")
        assert code == 404 and answer["code"] == "account_not_running"
        # the bad number was not taken: the login still asks
        assert "enter the number the phone shows" in gateway.status()[0].state
    finally:
        await gateway.close()


async def test_an_account_whose_login_never_asks_for_a_number_says_so(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    # the config's puppet (a Wechaty one), played by the simulator
    gateway = await wechat.gateway(echo, api={"port": 0, "token": TOKEN})
    code, answer = await wechat.world.drive(give(http, gateway, {"code": "123456"}))
    assert code == 409 and answer["code"] == "verify_code_not_supported"
    assert answer["error"] == (
        "account 'default' uses puppet 'wechaty-puppet-wechat', whose login never asks for a "
        "number "
        "(only iLink's does): scan and confirm on the phone"
    )
