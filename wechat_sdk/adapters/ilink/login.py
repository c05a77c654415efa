"""iLink's QR login: ask for a QR code, poll its status, say each status in words.

``get_bot_qrcode?bot_type=3`` (with the earlier tokens as ``local_token_list``) gives the
code and the link the phone scans (``qrcode_img_content``, the port's ``ScanEvent.qrcode``:
the gateway logs it, draws it and saves its PNG). ``get_qrcode_status`` is long-polled
through ``wait``, ``scaned``, ``confirmed`` (the bot token, ``ilink_bot_id``, its owner's
``ilink_user_id`` and the ``baseurl`` to use from then on) or ``expired``; also
``scaned_but_redirect`` (poll another host), ``need_verifycode``, ``verify_code_blocked``
and ``binded_redirect``. An expired code is a ``TIMEOUT`` scan event and a new code
follows, at most ``qrMaxTimeouts`` codes (the gateway counts them as for every puppet).

``binded_redirect`` (Tencent's client: the WeChat that scanned is bound already to one of
the tokens offered, no new credentials are given, the kept ones stay valid) logs in with
the kept login. With none kept (it expired: the server bound the scan to its token,
offered as an earlier one), it is no expired code: a new code is asked without the
earlier tokens, whose scan gives a new login.

``need_verifycode``: the phone shows a number, and the login waits for it from one
source, :class:`VerifyCodes` (a :class:`~wechat_sdk.puppet.VerifyCodeEvent` tells the
gateway, which asks the person: on the terminal, or through its API and CLI). The next
status poll carries it as ``verify_code``; ``need_verifycode`` again means it was wrong
(asked again), ``verify_code_blocked`` that too many were: the code is dead, a new one
follows (counted as an expired one).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wechat_sdk.adapters.ilink.api import ILinkApi, ILinkError, TimedOut
from wechat_sdk.adapters.ilink.session import KeptLogin
from wechat_sdk.clock import Clock
from wechat_sdk.logtext import shown
from wechat_sdk.puppet import (
    PuppetEvent,
    ScanEvent,
    ScanStatus,
    VerifyCodeEvent,
    VerifyCodeNotAsked,
    VerifyCodeOutcome,
    verify_number,
)

__all__ = ["STATUS_WORDS", "LoginGaveUp", "VerifyCodes", "qr_login", "verify_number"]

#: each status of ``get_qrcode_status``, in words (logged as it comes)
STATUS_WORDS = {
    "wait": "waiting for a scan",
    "scaned": "scanned: confirm the login on the phone",
    "confirmed": "confirmed: logging in",
    "expired": "the QR code expired: a new one follows",
    "scaned_but_redirect": "scanned: the login goes on at another iLink host",
    "need_verifycode": "the phone shows a number: the login waits for it to be entered",
    "verify_code_blocked": "too many wrong numbers on the phone: a new QR code follows",
    "binded_redirect": "the WeChat that scanned is already bound to this gateway",
}
#: seconds between two status polls when the server answers at once
POLL_GAP_S = 1.0
#: seconds to wait after a failed call before asking again
RETRY_S = 2.0
#: status calls failing in a row before the code is given up as expired (a new one follows)
STATUS_FAILURES = 5
#: seconds the login waits for the number before asking the server whether the code lives
ASK_AGAIN_S = 20.0
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?")
#: what a status poll that carried a number says of it
_VERDICTS: dict[str, VerifyCodeOutcome] = {
    "need_verifycode": "wrong",
    "verify_code_blocked": "blocked",
    "expired": "expired",
}


class VerifyCodes:
    """The one source of the number a login asks for (``need_verifycode``).

    The login calls :meth:`ask`, then :meth:`take`; whatever the person types the number
    into (the terminal, the gateway's API, its CLI) calls :meth:`submit` and learns what
    became of it.
    """

    def __init__(self) -> None:
        self._number: asyncio.Future[str] | None = None
        self._outcome: asyncio.Future[VerifyCodeOutcome] | None = None

    @property
    def asking(self) -> bool:
        """A login waits for a number now."""
        return self._number is not None and not self._number.done()

    def ask(self) -> None:
        if not self.asking:
            self._number = asyncio.get_running_loop().create_future()

    def give(self, code: str) -> asyncio.Future[VerifyCodeOutcome]:
        """Hand ``code`` to the login asking; its outcome, once the server said."""
        number = verify_number(code)
        if self._number is None or self._number.done():
            checking = self._outcome is not None and not self._outcome.done()
            raise VerifyCodeNotAsked(
                "a number given just before is being checked: wait for its answer"
                if checking
                else "its login asks for no number now (the account's status says when it does)"
            )
        self._outcome = asyncio.get_running_loop().create_future()
        self._number.set_result(number)
        return self._outcome

    async def submit(self, code: str, clock: Clock, within_s: float) -> VerifyCodeOutcome:
        """:meth:`give`, then what became of the number; ``pending`` after ``within_s``."""
        outcome = self.give(code)
        if not await _within(outcome, clock, within_s):
            return "pending"
        return outcome.result()

    async def take(self, clock: Clock, within_s: float) -> str | None:
        """The number given (None if none came within ``within_s``)."""
        number = self._number
        if number is None:
            return None
        if not await _within(number, clock, within_s):
            return None
        self._number = None
        return number.result()

    def tell(self, outcome: VerifyCodeOutcome) -> None:
        """What the server said of the number given last."""
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result(outcome)

    def close(self, outcome: VerifyCodeOutcome = "pending") -> None:
        """Nothing asks any more (a new QR code, the login over or stopped)."""
        self.tell(outcome)
        if self._number is not None and not self._number.done():
            self._number.cancel()
        self._number = None


async def _within(future: asyncio.Future[Any], clock: Clock, seconds: float) -> bool:
    """Wait for ``future`` up to ``seconds`` of the clock's time; whether it is done."""
    if not future.done():
        timer = asyncio.ensure_future(clock.sleep(seconds))
        try:
            await asyncio.wait({future, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
    return future.done() and not future.cancelled()


class LoginGaveUp(ILinkError):
    """No login: QR codes expired ``qrMaxTimeouts`` times (or the server refused one)."""


@dataclass
class _Code:
    code: str
    link: str


async def qr_login(
    api: ILinkApi,
    *,
    clock: Clock,
    emit: Callable[[PuppetEvent], None],
    log: logging.LoggerAdapter[logging.Logger],
    earlier_tokens: list[str],
    max_codes: int,
    kept: KeptLogin | None = None,
    codes: VerifyCodes | None = None,
) -> KeptLogin:
    """Log in by QR code; the confirmed login. Raises :class:`LoginGaveUp` after
    ``max_codes`` codes expired, or when the server cannot give one. ``codes``: where the
    number the phone may ask for comes from."""
    codes = codes if codes is not None else VerifyCodes()
    try:
        return await _login(api, clock, emit, log, earlier_tokens, max_codes, kept, codes)
    finally:
        codes.close()


async def _login(
    api: ILinkApi,
    clock: Clock,
    emit: Callable[[PuppetEvent], None],
    log: logging.LoggerAdapter[logging.Logger],
    earlier_tokens: list[str],
    max_codes: int,
    kept: KeptLogin | None,
    codes: VerifyCodes,
) -> KeptLogin:
    api.token = None  # the login's calls carry no token
    expired = 0
    offered = earlier_tokens  # (none once the server said one is bound: see below)
    code = await _new_code(api, clock, emit, log, offered)
    poll_base = api.base_url
    said: str | None = None
    scanned = False
    failed = 0
    number: str | None = None  # given by the person, sent with the next status poll
    asked = False  # this code asked for the number the phone shows
    while True:
        try:
            answer = await api.get_qrcode_status(code.code, poll_base, verify_code=number)
        except TimedOut:
            answer = {"status": "wait"}  # a long poll that ran out: still waiting
            heard = False
        except ILinkError as exc:  # (a connection refused or dropped among them)
            failed += 1
            log.warning("iLink login: the status call failed: %s (asking again)", exc)
            await clock.sleep(RETRY_S)
            if failed < STATUS_FAILURES:
                continue
            answer = {"status": "expired"}  # this code cannot be asked about: a new one
            heard = False
        else:
            failed = 0
            heard = True
        status = str(answer.get("status") or "wait")
        if number is not None and heard:  # what the server says of the number
            number = None
            verdict = _VERDICTS.get(status, "accepted")
            codes.tell(verdict)
            if verdict == "wrong":
                log.info("iLink login: wrong number: not the one the phone shows; asked again")
                codes.ask()
                emit(VerifyCodeEvent("wrong"))
            elif verdict == "accepted":
                log.info("iLink login: the number was right: the login goes on")
        changed = status != said
        if changed:
            words = STATUS_WORDS.get(status, "a status this client does not know: waiting on")
            log.info("iLink login: %s (%s)", shown(status, 40), words)
            said = status
        if status in ("scaned", "scaned_but_redirect", "need_verifycode") and not scanned:
            scanned = True
            emit(ScanEvent(ScanStatus.SCANNED, code.link, STATUS_WORDS["scaned"]))
        if status == "need_verifycode":
            if not asked:  # once a code (after a wrong number: asked again above)
                asked = True
                codes.ask()
                emit(VerifyCodeEvent("asked"))
            number = await codes.take(clock, ASK_AGAIN_S)
            continue  # at once: with the number, or to see that the code still lives
        if status == "confirmed":
            login = _confirmed(answer, api.base_url)
            if login is not None:
                if not scanned:  # scanned and confirmed between two polls: both said
                    emit(ScanEvent(ScanStatus.SCANNED, code.link, STATUS_WORDS["scaned"]))
                emit(ScanEvent(ScanStatus.CONFIRMED, "", STATUS_WORDS[status]))
                return login
            log.error("iLink login: confirmed without a bot token or bot id: a new QR code")
            status = "expired"
        elif status == "scaned_but_redirect":
            host = str(answer.get("redirect_host") or "")
            if _HOST.fullmatch(host):
                poll_base = f"https://{host}"
        elif status == "binded_redirect":
            if kept is not None:
                return kept
            # (bound to a token offered as an earlier one, whose login expired here: the
            # server gives no new login for it; without the earlier tokens it does)
            if not offered:
                raise LoginGaveUp(
                    "login gave up: iLink answered the scan binded_redirect (the WeChat "
                    "that scanned is bound already) though no earlier token was offered, and "
                    "gave no login: start the account again to scan a new QR code"
                )
            log.warning(
                "iLink login: binded_redirect: the WeChat that scanned is bound already, to "
                "a login of this gateway that expired, and iLink gives no new login for it: "
                "the next QR code is asked without the expired tokens; scan the new QR code "
                "reason=ilink_already_bound"
            )
            offered = []
            codes.close("expired")
            code = await _new_code(api, clock, emit, log, offered)
            poll_base, said, scanned, failed, asked = api.base_url, None, False, 0, False
            continue
        if status in ("expired", "verify_code_blocked"):
            expired += 1
            number = None
            codes.close("blocked" if status == "verify_code_blocked" else "expired")
            if status == "verify_code_blocked":
                emit(VerifyCodeEvent("blocked"))
            emit(ScanEvent(ScanStatus.TIMEOUT, "", STATUS_WORDS[status]))
            if expired >= max_codes:
                raise LoginGaveUp(
                    f"login gave up: {expired} QR codes expired without a scan (qrMaxTimeouts)"
                )
            code = await _new_code(api, clock, emit, log, offered)
            poll_base, said, scanned, failed, asked = api.base_url, None, False, 0, False
            continue
        await clock.sleep(POLL_GAP_S)


async def _new_code(
    api: ILinkApi,
    clock: Clock,
    emit: Callable[[PuppetEvent], None],
    log: logging.LoggerAdapter[logging.Logger],
    earlier_tokens: list[str],
) -> _Code:
    for attempt in range(1, 4):
        try:
            answer = await api.get_bot_qrcode(earlier_tokens)
        except ILinkError as exc:
            log.warning("iLink login: no QR code (attempt %d of 3): %s", attempt, exc)
            await clock.sleep(RETRY_S * attempt)
            continue
        code, link = answer.get("qrcode"), answer.get("qrcode_img_content")
        if isinstance(code, str) and code and isinstance(link, str) and link:
            emit(ScanEvent(ScanStatus.WAITING, link, STATUS_WORDS["wait"]))
            return _Code(code, link)
        log.warning("iLink login: the QR code answer has no qrcode or qrcode_img_content")
        await clock.sleep(RETRY_S * attempt)
    raise LoginGaveUp("login gave up: the iLink server gave no QR code (3 attempts)")


def _confirmed(answer: dict[str, object], base_url: str) -> KeptLogin | None:
    token, bot_id = answer.get("bot_token"), answer.get("ilink_bot_id")
    if not isinstance(token, str) or not token or not isinstance(bot_id, str) or not bot_id:
        return None
    user = answer.get("ilink_user_id")
    base = answer.get("baseurl")
    return KeptLogin(
        bot_id=bot_id,
        token=token,
        user_id=user if isinstance(user, str) else "",
        base_url=base
        if isinstance(base, str) and base.startswith(("http://", "https://"))
        else None,
    )
