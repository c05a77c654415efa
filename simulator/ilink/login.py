"""QR login of iLink bots: the codes a client asks for, and the owner's phone.

A client asks ``ilink/bot/get_bot_qrcode`` for a code and polls
``ilink/bot/get_qrcode_status`` for it: ``wait`` until the owner scans it (``scaned``),
then ``confirmed`` with the bot's token, or ``expired`` once ``world.qr_ttl_s`` has passed
(or the owner cancelled). The world plays the phone: ``world.scan(account)`` takes the
oldest code waiting (or the one asked for on that account's own base URL), and
``world.confirm(account)`` logs the account in with it. A code whose request carried a
token still valid for the account (``local_token_list``) answers ``binded_redirect`` at
confirmation: the client is bound already and keeps its token.

The phone may ask for a number instead (``world.confirm(account, verify_code=True)``): it
shows one (:meth:`QrBook.shown`), and the code answers ``need_verifycode`` until a status
poll carries it as ``verify_code``; then the login goes on as a confirmation does. A wrong
number answers ``need_verifycode`` again; the :data:`VERIFY_TRIES`-th wrong one answers
``verify_code_blocked``, and the code is dead (the client asks for a new one).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.ilink.state import ILinkState

__all__ = ["VERIFY_TRIES", "QrBook", "QrCode"]

#: wrong numbers a code takes before it answers ``verify_code_blocked``
VERIFY_TRIES = 3


@dataclass
class QrCode:
    """One login code and what happened to it."""

    code: str
    issued_at: float
    #: the account it logs in: given by the base URL it was asked on, or the first scan
    account_id: str | None
    local_tokens: tuple[str, ...] = ()
    #: wait, scaned, need_verifycode, confirmed, expired, binded_redirect, verify_code_blocked
    status: str = "wait"
    scanned_by: str | None = None
    #: the number the owner's phone shows, while the login asks for it
    verify_code: str | None = None
    wrong_codes: int = 0
    token: str | None = None
    base_url: str = ""  # the API base it was asked on: the ``baseurl`` of its login
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def set(self, status: str) -> None:
        self.status = status
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class QrBook:
    """The login codes of one world's iLink server."""

    def __init__(self, state: ILinkState) -> None:
        self.state = state
        self.codes: dict[str, QrCode] = {}

    def issue(self, account_id: str | None, local_tokens: tuple[str, ...]) -> QrCode:
        qr = QrCode(
            code=secrets.token_hex(16),
            issued_at=self.state.world.time.now(),
            account_id=account_id,
            local_tokens=local_tokens,
        )
        self.codes[qr.code] = qr
        if account_id is not None:
            self.state.world._log(self.state.sim(account_id), "scan", status="wait")
        return qr

    def status(self, code: str) -> QrCode | None:
        """The code, its expiry applied; None for a code this server never issued."""
        qr = self.codes.get(code)
        if qr is None:
            return None
        world = self.state.world
        live = ("wait", "scaned", "need_verifycode")
        if qr.status in live and world.time.now() - qr.issued_at >= world.qr_ttl_s:
            qr.set("expired")
        return qr

    def waiting(self, account_id: str) -> QrCode | None:
        """The code the account's owner would scan now: its own, else the oldest free one."""
        live = self._waiting_codes()
        own = [q for q in live if q.account_id == account_id]
        # (a code asked with another account's token is that account's client's)
        free = [q for q in live if q.account_id is None and self._tied_to(q) in (None, account_id)]
        first = own or free
        return first[0] if first else None

    def showing(self, account_id: str) -> QrCode | None:
        """The code a client of an account logged in already shows (its bot logged out by
        itself while the server still holds its token): one tied to the account (asked on
        its own base, given to it, or asked with one of its tokens in ``local_token_list``);
        a free one on the shared base only when the account is the world's only iLink
        account. Another one's client may be showing a free code (for its first login, or
        after its own bot logged out): scanned as this account, it would log the wrong
        account in and end the token this account's running client holds."""
        live = self._waiting_codes()
        own = [q for q in live if self._tied_to(q) == account_id]
        if own:
            return own[0]
        others = [
            a
            for a, sim in self.state.world.accounts.items()
            if a != account_id and sim.transport == "ilink"
        ]
        free = [q for q in live if self._tied_to(q) is None]
        return free[0] if free and not others else None

    def _waiting_codes(self) -> list[QrCode]:
        """The codes shown and not scanned yet (expired ones marked so), oldest first."""
        return [
            q
            for q in (self.status(c) for c in list(self.codes))
            if q is not None and q.status == "wait"
        ]

    def _tied_to(self, qr: QrCode) -> str | None:
        """The account a code is for: the one it was asked or given for, else the one whose
        token (valid or not: tokens are ``<ilink_bot_id>:<hex>``) its request carried."""
        if qr.account_id is not None:
            return qr.account_id
        bots = {
            sim.wxid: account_id
            for account_id, sim in self.state.world.accounts.items()
            if sim.transport == "ilink"
        }
        for token in qr.local_tokens:
            account_id = bots.get(token.partition(":")[0])
            if account_id is not None:
                return account_id
        return None

    def scanned(self, account_id: str, *, asking: bool = False) -> QrCode | None:
        """The account's code scanned and not confirmed yet (``asking``: or asking for
        the number its phone shows)."""
        statuses = ("scaned", "need_verifycode") if asking else ("scaned",)
        for code in list(self.codes):
            qr = self.status(code)
            if qr is not None and qr.status in statuses and qr.account_id == account_id:
                return qr
        return None

    def shown(self, account_id: str) -> str | None:
        """The number the account owner's phone shows now (None when no login asks for one)."""
        qr = self.scanned(account_id, asking=True)
        return qr.verify_code if qr is not None and qr.status == "need_verifycode" else None

    def scan(self, account_id: str, qr: QrCode | None = None) -> QrCode:
        """The owner scans ``qr``, by default the code the account's owner would scan now
        (:meth:`waiting`)."""
        qr = qr if qr is not None else self.waiting(account_id)
        if qr is None:
            raise RuntimeError(
                f"no iLink client is showing a QR code for account {account_id!r} "
                "(none asked get_bot_qrcode, or its codes expired)"
            )
        sim = self.state.sim(account_id)
        qr.account_id = account_id
        qr.scanned_by = sim.owner
        self.state.world._log(sim, "scan", status="scaned")
        qr.set("scaned")
        return qr

    def confirm(self, account_id: str, *, verify_code: bool = False) -> QrCode:
        """The owner confirms on the phone; with ``verify_code`` the phone shows a number
        the client must send back first (its ``verify_code``)."""
        qr = self.scanned(account_id) or self.scan(account_id)
        if verify_code:
            qr.verify_code = f"{secrets.randbelow(1_000_000):06d}"
            qr.wrong_codes = 0
            self.state.world._log(self.state.sim(account_id), "scan", status="need_verifycode")
            qr.set("need_verifycode")
            return qr
        return self._logged_in(qr, account_id)

    def enter(self, qr: QrCode, number: str) -> None:
        """A status poll carried ``number`` as its ``verify_code``: checked against the
        phone's while the code asks for one (sent again on a later poll, it is ignored:
        Tencent's client sends it on each poll until the status moves on)."""
        if qr.status != "need_verifycode" or qr.account_id is None:
            return
        sim = self.state.sim(qr.account_id)
        if number.strip() == qr.verify_code:
            self.state.world._log(sim, "verify_code", right=True)
            qr.verify_code = None
            self._logged_in(qr, qr.account_id)
            return
        qr.wrong_codes += 1
        self.state.world._log(sim, "verify_code", right=False, wrong=qr.wrong_codes)
        if qr.wrong_codes >= VERIFY_TRIES:
            qr.verify_code = None
            self.state.world._log(sim, "scan", status="verify_code_blocked")
            qr.set("verify_code_blocked")

    def _logged_in(self, qr: QrCode, account_id: str) -> QrCode:
        bot = self.state.bot(account_id)
        if bot.token is not None and bot.token in qr.local_tokens:
            self.state.world._log(self.state.sim(account_id), "scan", status="binded_redirect")
            qr.set("binded_redirect")
            return qr
        qr.token = bot.log_in()
        qr.set("confirmed")
        return qr

    def cancel(self, account_id: str) -> None:
        """The owner cancels on the phone: the code shown is dead (the client asks anew)."""
        qr = self.scanned(account_id, asking=True) or self.waiting(account_id)
        if qr is None:
            raise RuntimeError(f"account {account_id!r} is not showing a QR code")
        qr.verify_code = None
        self.state.world._log(self.state.sim(account_id), "scan", status="cancelled")
        qr.set("expired")
