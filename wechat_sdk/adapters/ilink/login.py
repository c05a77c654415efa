"""iLink's QR login: ask for a QR code, poll its status, say each status in words.

``get_bot_qrcode?bot_type=3`` (with the earlier tokens as ``local_token_list``) gives the
code and the link the phone scans (``qrcode_img_content``, the port's ``ScanEvent.qrcode``:
the gateway logs it, draws it and saves its PNG). ``get_qrcode_status`` is long-polled
through ``wait``, ``scaned``, ``confirmed`` (the bot token, ``ilink_bot_id``, its owner's
``ilink_user_id`` and the ``baseurl`` to use from then on) or ``expired``; also
``scaned_but_redirect`` (poll another host), ``need_verifycode``, ``verify_code_blocked``
and ``binded_redirect``. An expired code is a ``TIMEOUT`` scan event and a new code
follows, at most ``qrMaxTimeouts`` codes (the gateway counts them as for every puppet).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from wechat_sdk.adapters.ilink.api import ILinkApi, ILinkError, Unreachable
from wechat_sdk.adapters.ilink.session import KeptLogin
from wechat_sdk.clock import Clock
from wechat_sdk.logtext import shown
from wechat_sdk.puppet import PuppetEvent, ScanEvent, ScanStatus

__all__ = ["STATUS_WORDS", "LoginGaveUp", "qr_login"]

#: each status of ``get_qrcode_status``, in words (logged as it comes)
STATUS_WORDS = {
    "wait": "waiting for a scan",
    "scaned": "scanned: confirm the login on the phone",
    "confirmed": "confirmed: logging in",
    "expired": "the QR code expired: a new one follows",
    "scaned_but_redirect": "scanned: the login goes on at another iLink host",
    "need_verifycode": (
        "the phone asks for the number it shows, which a gateway cannot type in: "
        "confirm on the phone, or scan the next QR code"
    ),
    "verify_code_blocked": "too many wrong numbers on the phone: a new QR code follows",
    "binded_redirect": "this bot is already bound to this gateway: its kept login is used",
}
#: seconds between two status polls when the server answers at once
POLL_GAP_S = 1.0
#: seconds to wait after a failed call before asking again
RETRY_S = 2.0
#: status calls failing in a row before the code is given up as expired (a new one follows)
STATUS_FAILURES = 5
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?")


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
) -> KeptLogin:
    """Log in by QR code; the confirmed login. Raises :class:`LoginGaveUp` after
    ``max_codes`` codes expired, or when the server cannot give one."""
    api.token = None  # the login's calls carry no token
    expired = 0
    code = await _new_code(api, clock, emit, log, earlier_tokens)
    poll_base = api.base_url
    said: str | None = None
    scanned = False
    failed = 0
    while True:
        try:
            answer = await api.get_qrcode_status(code.code, poll_base)
        except Unreachable:
            answer = {"status": "wait"}  # a long poll that ran out: still waiting
        except ILinkError as exc:
            failed += 1
            log.warning("iLink login: the status call failed: %s (asking again)", exc)
            await clock.sleep(RETRY_S)
            if failed < STATUS_FAILURES:
                continue
            answer = {"status": "expired"}  # this code cannot be asked about: a new one
        else:
            failed = 0
        status = str(answer.get("status") or "wait")
        changed = status != said
        if changed:
            words = STATUS_WORDS.get(status, "a status this client does not know: waiting on")
            log.info("iLink login: %s (%s)", shown(status, 40), words)
            said = status
        if status in ("scaned", "scaned_but_redirect") and not scanned:
            scanned = True
            emit(ScanEvent(ScanStatus.SCANNED, code.link, STATUS_WORDS["scaned"]))
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
            log.error("iLink login: the server says the bot is bound, but no login is kept")
            status = "expired"
        if status in ("expired", "verify_code_blocked"):
            expired += 1
            emit(ScanEvent(ScanStatus.TIMEOUT, "", STATUS_WORDS["expired"]))
            if expired >= max_codes:
                raise LoginGaveUp(
                    f"login gave up: {expired} QR codes expired without a scan (qrMaxTimeouts)"
                )
            code = await _new_code(api, clock, emit, log, earlier_tokens)
            poll_base, said, scanned, failed = api.base_url, None, False, 0
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
