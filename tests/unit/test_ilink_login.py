"""iLink's QR login, status by status, over a scripted API (no HTTP): the scan events the
gateway gets, each status said in words, redirects, and when the login gives up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from wechat_sdk.adapters.ilink.api import ApiError, TimedOut, Unreachable
from wechat_sdk.adapters.ilink.login import (
    STATUS_FAILURES,
    LoginGaveUp,
    VerifyCodes,
    qr_login,
    verify_number,
)
from wechat_sdk.adapters.ilink.session import KeptLogin
from wechat_sdk.puppet import (
    PuppetEvent,
    ScanEvent,
    ScanStatus,
    VerifyCodeEvent,
    VerifyCodeNotAsked,
    VerifyCodeOutcome,
)

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
        #: the verify_code each status poll carried (None: none)
        self.numbers: list[str | None] = []

    async def get_bot_qrcode(self, earlier_tokens: list[str]) -> dict[str, Any]:
        self.codes += 1
        self.earlier.append(earlier_tokens)
        return {"qrcode": f"code-{self.codes}", "qrcode_img_content": f"https://qr/{self.codes}"}

    async def get_qrcode_status(
        self, qrcode: str, base_url: str, *, verify_code: str | None = None
    ) -> dict[str, Any]:
        self.asked.append((qrcode, base_url))
        self.numbers.append(verify_code)
        answer = self.statuses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def login(
    api: ScriptedApi,
    *,
    max_codes: int = 3,
    kept: KeptLogin | None = None,
    codes: VerifyCodes | None = None,
    person: Callable[[PuppetEvent], None] | None = None,
) -> tuple[KeptLogin, list[PuppetEvent], list[str]]:
    """The login over ``api``; ``person`` sees each event as it is emitted (and may give
    ``codes`` the number the phone shows)."""
    events: list[PuppetEvent] = []
    records: list[str] = []

    def emit(event: PuppetEvent) -> None:
        events.append(event)
        if person is not None:
            person(event)

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
            emit=emit,
            log=logging.LoggerAdapter(logger, {"account": "a"}),
            earlier_tokens=["earlier"],
            max_codes=max_codes,
            kept=kept,
            codes=codes,
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


async def test_binded_redirect_with_no_login_kept_asks_a_new_code_without_earlier_tokens() -> None:
    """The kept login expired; iLink answers the scan ``binded_redirect`` (the WeChat is
    bound already, to a token the gateway offered as an earlier one) and gives no new
    login: not an expired code (one allowed here), but said, and the next code is asked
    without the earlier tokens, whose scan logs in."""
    api = ScriptedApi([{"status": "binded_redirect"}, CONFIRMED])
    got, events, said = await login(api, max_codes=1)
    assert got.token == "tok"
    assert api.earlier == [["earlier"], []]
    assert ScanStatus.TIMEOUT not in scans(events)
    line = next(line for line in said if "binded_redirect" in line and "expired" in line)
    assert "scan the new QR code" in line
    assert not any("its kept login is used" in line for line in said)


async def test_binded_redirect_without_earlier_tokens_gives_up_saying_why() -> None:
    api = ScriptedApi([{"status": "binded_redirect"}, {"status": "binded_redirect"}])
    with pytest.raises(LoginGaveUp, match="binded_redirect") as gave_up:
        await login(api, max_codes=3)
    assert "without a scan" not in str(gave_up.value)
    assert api.codes == 2


async def test_a_confirmation_without_a_token_is_a_new_code() -> None:
    api = ScriptedApi([{"status": "confirmed", "ilink_bot_id": "b@im.bot"}, CONFIRMED])
    got, _, _ = await login(api)
    assert got.token == "tok" and api.codes == 2


async def test_an_unknown_status_is_said_and_waited_on() -> None:
    api = ScriptedApi([{"status": "unheard-of"}, CONFIRMED])
    got, _, said = await login(api)
    assert got.token == "tok"
    assert any("a status this client does not know" in line for line in said)


class Person:
    """Reads the phone and types numbers: one from ``numbers`` each time the login asks."""

    def __init__(self, codes: VerifyCodes, numbers: list[str]) -> None:
        self.codes = codes
        self.numbers = numbers
        self.outcomes: list[asyncio.Future[VerifyCodeOutcome]] = []

    def __call__(self, event: PuppetEvent) -> None:
        if isinstance(event, VerifyCodeEvent) and event.state in ("asked", "wrong"):
            self.outcomes.append(self.codes.give(self.numbers.pop(0)))

    def said(self) -> list[VerifyCodeOutcome]:
        return [f.result() for f in self.outcomes if f.done()]


def code_events(events: list[PuppetEvent]) -> list[str]:
    return [e.state for e in events if isinstance(e, VerifyCodeEvent)]


async def test_the_number_is_asked_a_wrong_one_asked_again_the_right_one_logs_in() -> None:
    need = {"status": "need_verifycode"}
    api = ScriptedApi([{"status": "wait"}, need, need, CONFIRMED])
    codes = VerifyCodes()
    person = Person(codes, ["111111", "42 42 42"])
    got, events, said = await login(api, codes=codes, person=person)
    assert got.token == "tok"
    # each number goes with the next status poll, once, as typed (spaces dropped)
    assert api.numbers == [None, None, "111111", "424242"]
    assert code_events(events) == ["asked", "wrong"]
    assert scans(events) == [ScanStatus.WAITING, ScanStatus.SCANNED, ScanStatus.CONFIRMED]
    assert person.said() == ["wrong", "accepted"]
    assert (
        "iLink login: need_verifycode (the phone shows a number: the login waits for it "
        "to be entered)" in said
    )
    assert any("wrong number: not the one the phone shows" in line for line in said)
    assert not codes.asking  # logged in: nothing asks any more
    with pytest.raises(VerifyCodeNotAsked, match="asks for no number now"):
        codes.give("123456")


async def test_too_many_wrong_numbers_block_the_code_and_a_new_qr_code_follows() -> None:
    need = {"status": "need_verifycode"}
    blocked = {"status": "verify_code_blocked"}
    api = ScriptedApi([need, need, need, blocked, {"status": "scaned"}, CONFIRMED])
    codes = VerifyCodes()
    person = Person(codes, ["1", "2", "3"])
    got, events, said = await login(api, codes=codes, person=person)
    assert got.token == "tok"
    assert code_events(events) == ["asked", "wrong", "wrong", "blocked"]
    assert person.said() == ["wrong", "wrong", "blocked"]
    assert scans(events) == [
        ScanStatus.WAITING,
        ScanStatus.SCANNED,
        ScanStatus.TIMEOUT,  # counted by qrMaxTimeouts as an expired code
        ScanStatus.WAITING,
        ScanStatus.SCANNED,
        ScanStatus.CONFIRMED,
    ]
    timeout = next(e for e in events if isinstance(e, ScanEvent) and e.status is ScanStatus.TIMEOUT)
    assert timeout.data == "too many wrong numbers on the phone: a new QR code follows"
    assert [code for code, _ in api.asked] == ["code-1"] * 4 + ["code-2"] * 2
    assert api.numbers[4:] == [None, None]  # the new code is polled without a number
    assert any("verify_code_blocked (too many wrong numbers" in line for line in said)


async def test_a_code_that_expires_while_the_number_is_awaited_ends_the_asking() -> None:
    need = {"status": "need_verifycode"}
    api = ScriptedApi([need, need, {"status": "expired"}, CONFIRMED])
    codes = VerifyCodes()
    _, events, _ = await login(api, codes=codes)  # nobody types: the server is asked again
    assert code_events(events) == ["asked"]  # asked once, not again at each poll
    assert api.numbers == [None, None, None, None]
    assert ScanStatus.TIMEOUT in scans(events)
    assert not codes.asking


async def test_a_number_is_digits() -> None:
    assert verify_number(" 12 34\n") == "1234"
    for bad in ("", "abc", "12a4", "1" * 17):
        with pytest.raises(ValueError, match="digits only"):
            verify_number(bad)
    codes = VerifyCodes()
    codes.ask()
    with pytest.raises(ValueError, match="digits only"):
        codes.give("twelve")
    assert codes.asking  # a bad number is not taken: the login still asks


async def test_a_status_call_failing_again_and_again_gives_a_new_code() -> None:
    failing: list[dict[str, Any] | Exception] = [
        ApiError("get_qrcode_status", -1, None, "bad qrcode") for _ in range(STATUS_FAILURES)
    ]
    api = ScriptedApi([*failing, CONFIRMED])
    got, events, _ = await login(api)
    assert got.bot_id == "b@im.bot"
    assert ScanStatus.TIMEOUT in scans(events)
    assert api.codes == 2


async def test_a_status_call_that_cannot_connect_is_said_and_counted_as_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only a long poll that ran out means "still waiting": a connection refused or dropped
    at every call was read as that too, forever, without a word (and the code never
    counted against qrMaxTimeouts)."""
    refused = [Unreachable("get_qrcode_status: connection refused")] * STATUS_FAILURES
    ran_out = TimedOut("get_qrcode_status: no answer within 40 s")
    api = ScriptedApi([ran_out, *refused, CONFIRMED])
    with caplog.at_level(logging.WARNING):
        got, events, _ = await login(api)
    assert got.bot_id == "b@im.bot"
    assert ScanStatus.TIMEOUT in scans(events) and api.codes == 2
    said = [r.getMessage() for r in caplog.records if "status call failed" in r.getMessage()]
    assert len(said) == STATUS_FAILURES and "connection refused" in said[0]
