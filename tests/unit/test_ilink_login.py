"""iLink's QR login, status by status, over a scripted API (no HTTP): the scan events the
gateway gets, each status said in words, redirects, and when the login gives up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from wechat_sdk.adapters.ilink.api import ApiError
from wechat_sdk.adapters.ilink.login import STATUS_FAILURES, LoginGaveUp, qr_login
from wechat_sdk.adapters.ilink.session import KeptLogin
from wechat_sdk.puppet import PuppetEvent, ScanEvent, ScanStatus

T = TypeVar("T")
CONFIRMED = {
    "status": "confirmed",
    "bot_token": "tok",
    "ilink_bot_id": "b@im.bot",
    "ilink_user_id": "owner@im.wechat",
    "baseurl": "https://ilink.example",
}


class InstantClock:
    def now(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

    async def run_blocking(self, fn: Callable[[], T]) -> T:
        return fn()


class ScriptedApi:
    """get_bot_qrcode gives code-1, code-2, ...; get_qrcode_status answers from a list."""

    def __init__(self, statuses: list[dict[str, Any] | Exception]) -> None:
        self.statuses = statuses
        self.base_url = "https://ilinkai.weixin.qq.com"
        self.token: str | None = "old"
        self.codes = 0
        self.asked: list[tuple[str, str]] = []
        self.earlier: list[list[str]] = []

    async def get_bot_qrcode(self, earlier_tokens: list[str]) -> dict[str, Any]:
        self.codes += 1
        self.earlier.append(earlier_tokens)
        return {"qrcode": f"code-{self.codes}", "qrcode_img_content": f"https://qr/{self.codes}"}

    async def get_qrcode_status(self, qrcode: str, base_url: str) -> dict[str, Any]:
        self.asked.append((qrcode, base_url))
        answer = self.statuses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def login(
    api: ScriptedApi, *, max_codes: int = 3, kept: KeptLogin | None = None
) -> tuple[KeptLogin, list[PuppetEvent], list[str]]:
    events: list[PuppetEvent] = []
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("test.ilink.login")
    logger.setLevel(logging.INFO)
    handler = Collect()
    logger.addHandler(handler)
    try:
        got = await qr_login(
            api,  # type: ignore[arg-type]
            clock=InstantClock(),
            emit=events.append,
            log=logging.LoggerAdapter(logger, {"account": "a"}),
            earlier_tokens=["earlier"],
            max_codes=max_codes,
            kept=kept,
        )
    finally:
        logger.removeHandler(handler)
    return got, events, records


def scans(events: list[PuppetEvent]) -> list[ScanStatus]:
    return [e.status for e in events if isinstance(e, ScanEvent)]


async def test_wait_scanned_confirmed_is_a_login_said_in_words() -> None:
    api = ScriptedApi([{"status": "wait"}, {"status": "scaned"}, {"status": "scaned"}, CONFIRMED])
    got, events, said = await login(api)
    assert got == KeptLogin("b@im.bot", "tok", "owner@im.wechat", "https://ilink.example")
    assert scans(events) == [ScanStatus.WAITING, ScanStatus.SCANNED, ScanStatus.CONFIRMED]
    assert events[0] == ScanEvent(ScanStatus.WAITING, "https://qr/1", "waiting for a scan")
    assert said == [
        "iLink login: wait (waiting for a scan)",
        "iLink login: scaned (scanned: confirm the login on the phone)",
        "iLink login: confirmed (confirmed: logging in)",
    ]
    assert api.token is None  # the login's calls carry no token
    assert api.earlier == [["earlier"]]  # local_token_list


async def test_an_expired_code_is_a_timeout_and_a_new_code() -> None:
    api = ScriptedApi([{"status": "expired"}, CONFIRMED])
    _, events, said = await login(api)
    assert scans(events) == [
        ScanStatus.WAITING,
        ScanStatus.TIMEOUT,
        ScanStatus.WAITING,
        ScanStatus.SCANNED,
        ScanStatus.CONFIRMED,
    ]
    assert [code for code, _ in api.asked] == ["code-1", "code-2"]
    assert "iLink login: expired (the QR code expired: a new one follows)" in said


async def test_codes_expiring_max_times_give_up() -> None:
    api = ScriptedApi([{"status": "expired"}, {"status": "verify_code_blocked"}])
    with pytest.raises(LoginGaveUp, match="2 QR codes expired without a scan"):
        await login(api, max_codes=2)
    assert api.codes == 2


async def test_a_redirect_moves_the_status_polls_to_the_named_host() -> None:
    redirect = {"status": "scaned_but_redirect", "redirect_host": "idc2.ilink.example"}
    api = ScriptedApi([redirect, CONFIRMED])
    await login(api)
    assert api.asked[1][1] == "https://idc2.ilink.example"
    bad = {"status": "scaned_but_redirect", "redirect_host": "evil.example/path?x"}
    api = ScriptedApi([bad, CONFIRMED])
    await login(api)
    assert api.asked[1][1] == "https://ilinkai.weixin.qq.com"  # not a host: not followed


async def test_binded_redirect_keeps_the_kept_login() -> None:
    kept = KeptLogin("b@im.bot", "kept-token")
    got, _, said = await login(ScriptedApi([{"status": "binded_redirect"}]), kept=kept)
    assert got is kept
    assert any("already bound" in line for line in said)


async def test_a_confirmation_without_a_token_is_a_new_code() -> None:
    api = ScriptedApi([{"status": "confirmed", "ilink_bot_id": "b@im.bot"}, CONFIRMED])
    got, _, _ = await login(api)
    assert got.token == "tok" and api.codes == 2


async def test_need_verifycode_says_what_to_do_and_waits_on() -> None:
    api = ScriptedApi([{"status": "need_verifycode"}, {"status": "unheard-of"}, CONFIRMED])
    _, _, said = await login(api)
    assert any("cannot type in" in line for line in said)
    assert any("a status this client does not know" in line for line in said)


async def test_a_status_call_failing_again_and_again_gives_a_new_code() -> None:
    failing: list[dict[str, Any] | Exception] = [
        ApiError("get_qrcode_status", -1, None, "bad qrcode") for _ in range(STATUS_FAILURES)
    ]
    api = ScriptedApi([*failing, CONFIRMED])
    got, events, _ = await login(api)
    assert got.bot_id == "b@im.bot"
    assert ScanStatus.TIMEOUT in scans(events)
    assert api.codes == 2
