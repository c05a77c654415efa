"""Sending through iLink: the reply window counted, ``sendmessage`` with the peer's
``context_token``, retried after a ``ret -2`` (nothing was taken) under the same
``client_id``, files through the CDN, and the typing indicator.

``ret -2`` is iLink's answer to its rate limit and also to a send its own reply window
does not allow (its count, or its clock, ahead of ours). A send refused so every time is
a closed window: :class:`~wechat_sdk.puppet.WindowClosed`, and the peer's window counted
full until their next message.

What a failed send means:

- not taken, so the gateway may send it again (a transient
  :class:`~wechat_sdk.puppet.SendError`): an HTTP 4xx, or a 503 that is iLink's own (its
  JSON) or asks to come back (``Retry-After``); iLink's own refusals (``ret``/``errcode``)
  are final, and not taken either;
- not sent at all: the connection could not be made (refused, no route, or not made
  within :data:`~wechat_sdk.adapters.ilink.api.CONNECT_S`): a transient
  :class:`~wechat_sdk.puppet.SendError`, tried again as any network error;
- may have been taken: the answer lost (a connection cut, a timeout once connected), an
  answer that is not iLink's JSON, or another HTTP 5xx. A 502 or a 504 is what a proxy or
  a load balancer answers when it gave up waiting on a server that may well have taken
  the message, a proxy's bare 503 may come after it forwarded the request (Envoy's
  "upstream reset"), and a 500 may come after the message was kept. Such a send is never
  sent again: iLink gives the bot no echo of its own messages, so no later evidence could
  settle it, and it is a final :class:`~wechat_sdk.puppet.SendError` with the code
  ``outcome_unknown`` (sending it again, under a new ``client_id``, could deliver it twice).

The window is iLink's rule, counted here and never guessed at: the user writes first; at
most :data:`WINDOW_MESSAGES` bot messages after each user message; nothing
:data:`WINDOW_S` after it; a bot message does not renew it. A send the window does not
allow raises :class:`~wechat_sdk.puppet.WindowClosed` and nothing goes out.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wechat_sdk.adapters.ilink import cdn
from wechat_sdk.adapters.ilink.api import (
    ApiError,
    BadAnswer,
    ILinkApi,
    NotConnected,
    RateLimited,
    SessionExpired,
    Unreachable,
)
from wechat_sdk.adapters.ilink.state import ILinkState, PeerWindow
from wechat_sdk.adapters.ilink.wire import ITEM_TEXT
from wechat_sdk.clock import Clock
from wechat_sdk.puppet import (
    OutboundFile,
    ReplyWindow,
    SendError,
    WindowClosed,
)

__all__ = ["WINDOW_MESSAGES", "WINDOW_S", "Sender", "window_of"]

WINDOW_S = 24 * 3600.0
WINDOW_MESSAGES = 10
#: attempts of one ``sendmessage`` (the same client_id each time) and the waits between
SEND_ATTEMPTS = 5
RATE_LIMIT_WAITS_S = (1.0, 2.0, 4.0, 8.0)
#: a peer's typing ticket (``getconfig``) is asked again after this long
TYPING_TICKET_S = 3600.0


def window_of(counted: PeerWindow | None, in_flight: int = 0) -> ReplyWindow:
    """The port's view of a peer's window (a peer who never wrote: closed)."""
    if counted is None or counted.user_at is None:
        return ReplyWindow(remaining=0, closes_at=0.0)
    remaining = max(0, WINDOW_MESSAGES - counted.bot_sent - in_flight)
    return ReplyWindow(remaining=remaining, closes_at=counted.user_at + WINDOW_S)


@dataclass
class Sender:
    """One account's sends, over its API, state and counted windows."""

    api: ILinkApi
    state: ILinkState
    clock: Clock
    log: logging.LoggerAdapter[logging.Logger]
    windows: dict[str, PeerWindow]
    #: called with (message id, peer, text) after each accepted send (the self-echo)
    on_sent: Callable[[str, str, str, str], None]
    #: called when a send met an expired session (the puppet logs in again)
    on_expired: Callable[[], None]
    in_flight: dict[str, int] = field(default_factory=dict)
    #: sends begun to each peer so far (typing shown after one would follow it)
    begun: dict[str, int] = field(default_factory=dict)
    tickets: dict[str, tuple[str, float]] = field(default_factory=dict)
    #: raises a SendError unless the account may still send from here, called right
    #: before each ``sendmessage`` request leaves (a cluster's lease, by the local clock)
    before_send: Callable[[], None] | None = None

    def window(self, peer: str) -> ReplyWindow:
        return window_of(self.windows.get(peer), self.in_flight.get(peer, 0))

    def forget(self, peer: str) -> None:
        """A peer not heard from for long (pruned with the state): what is kept of it
        here goes too, but a send under way."""
        self.windows.pop(peer, None)
        self.begun.pop(peer, None)
        self.tickets.pop(peer, None)
        if not self.in_flight.get(peer):
            self.in_flight.pop(peer, None)

    async def send_text(self, peer: str, text: str) -> str:
        item = {"type": ITEM_TEXT, "text_item": {"text": text}}
        return await self._send(peer, item, text, "text")

    async def send_file(self, peer: str, file: OutboundFile) -> str:
        # a voice reply goes as a file: iLink drops a bot's voice items without a word
        word = file.kind if file.kind in ("image", "video") else "file"
        self._check_window(peer)  # before the upload: nothing is uploaded for nothing
        try:
            data = file.read()
        except (OSError, ValueError) as exc:
            raise SendError(f"cannot read {file.name!r}: {exc}", transient=False) from exc
        try:
            uploaded = await cdn.upload(self.api, data, word=word, to_user=peer)
        except SessionExpired as exc:
            self.on_expired()
            raise SendError(
                "not logged in: the iLink session expired", code="not_logged_in"
            ) from exc
        except (cdn.CdnFailed, ApiError, Unreachable, BadAnswer) as exc:
            raise SendError(f"the file did not reach iLink's CDN: {exc}") from exc
        item = cdn.media_item(word, uploaded, file.name)
        return await self._send(peer, item, f"[{word}: {file.name}]", word)

    def _check_window(self, peer: str) -> None:
        counted = self.windows.get(peer)
        if counted is None or counted.user_at is None:
            raise WindowClosed(
                "reply window closed: the user has not written yet (an iLink bot only answers)"
            )
        window = self.window(peer)
        if self.clock.now() > window.closes_at:
            raise WindowClosed("reply window closed: the user has not written in 24 h")
        if window.remaining <= 0:
            raise WindowClosed(
                f"reply window closed: {WINDOW_MESSAGES} replies already sent since the "
                "user's last message"
            )

    async def _send(self, peer: str, item: dict[str, Any], text: str, what: str) -> str:
        self._check_window(peer)
        # counted from here (two sends at once cannot both take the window's last place)
        self.in_flight[peer] = self.in_flight.get(peer, 0) + 1
        self.begun[peer] = self.begun.get(peer, 0) + 1
        try:
            token = await self.state.context_token(peer)
            if token is None:
                raise WindowClosed("reply window closed: no context_token from this user yet")
            msg = {
                "from_user_id": "",
                "to_user_id": peer,
                "client_id": f"wechat-sdk:{secrets.token_hex(12)}",
                "message_type": 2,  # a bot's
                "message_state": 2,  # finished
                "item_list": [item],
                "context_token": token,
            }
            unknown: SendError | None = None
            try:
                answer = await self._post(msg, what)
            except SendError as exc:
                if exc.code != "outcome_unknown":
                    raise
                unknown, answer = exc, {}  # it may have gone out: it takes its place
        finally:
            self.in_flight[peer] -= 1
        message_id = str(answer.get("message_id") or "") or str(msg["client_id"])
        await self._count(peer, message_id, text, what)
        if unknown is not None:
            raise unknown
        self.on_sent(message_id, peer, text, what)
        return message_id

    async def _count(self, peer: str, message_id: str, text: str, what: str) -> None:
        """A message that went out (or may have) takes a place in the peer's reply window,
        here and in the state."""
        counted = self.windows.get(peer) or PeerWindow(None, 0)
        self.windows[peer] = PeerWindow(counted.user_at, counted.bot_sent + 1)
        try:
            await self.state.sent(peer, message_id, text, self.clock.now())
        except Exception as exc:  # it went out (or may have): never sent again
            self.log.error(
                "could not record the %s sent to %s in the iLink state: %s (it went out, "
                "or may have; after a restart the reply window may count one message fewer) "
                "reason=ilink_state_error",
                what,
                peer,
                exc,
            )

    async def _post(self, msg: dict[str, Any], what: str) -> dict[str, Any]:
        """``sendmessage``; after a rate limit (nothing was taken) again, with the same
        client_id, up to SEND_ATTEMPTS times. A lost answer is never sent again here."""
        last = ""
        for attempt in range(1, SEND_ATTEMPTS + 1):
            if self.before_send is not None:
                self.before_send()  # (the last step before the request: no await between)
            try:
                return await self.api.send_message(msg)
            except RateLimited as exc:
                last = f"rate limited by iLink ({exc})"
            except SessionExpired as exc:
                self.on_expired()
                raise SendError(
                    "not logged in: the iLink session expired", code="not_logged_in"
                ) from exc
            except BadAnswer as exc:
                if exc.not_taken:
                    raise SendError(f"iLink did not take the {what}: {exc}") from exc
                raise _unknown(what, exc) from exc
            except NotConnected as exc:  # it never left: sent again, as any network error
                raise SendError(f"the {what} was not sent: {exc}") from exc
            except Unreachable as exc:  # it may have been taken: not sent a second time
                raise _unknown(what, exc) from exc
            except ApiError as exc:
                raise SendError(f"iLink refused the {what}: {exc}", transient=False) from exc
            if attempt < SEND_ATTEMPTS:
                wait = RATE_LIMIT_WAITS_S[min(attempt - 1, len(RATE_LIMIT_WAITS_S) - 1)]
                self.log.info(
                    "iLink rate limit (ret -2): the %s is sent again in %.0f s under the same "
                    "client_id (attempt %d of %d) reason=rate_limited",
                    what,
                    wait,
                    attempt + 1,
                    SEND_ATTEMPTS,
                )
                await self.clock.sleep(wait)
        # iLink answers ret -2 for its rate limit, and also when its own reply window for
        # the user is closed (its count, or its clock, ahead of ours: a message of another
        # client with the bot's token, a count lost with the state). Refused all along:
        # the window is closed by the server's word, until the user writes again
        self.close_window(str(msg["to_user_id"]))
        raise WindowClosed(
            f"reply window closed: iLink refused the {what} with ret -2 {SEND_ATTEMPTS} "
            f"times in {sum(RATE_LIMIT_WAITS_S):g} s ({last}): its window for this user is "
            "closed, or its rate limit holds; nothing more goes to them before they write again"
        )

    def close_window(self, peer: str) -> None:
        """The server refuses messages to ``peer``: the window is counted full until their
        next message (which opens a new one)."""
        counted = self.windows.get(peer) or PeerWindow(None, 0)
        self.windows[peer] = PeerWindow(counted.user_at, max(counted.bot_sent, WINDOW_MESSAGES))

    async def set_typing(self, peer: str, typing: bool) -> None:
        """Typing shown or cancelled; failures are logged, never raised. Not shown when a
        message went to the peer while its ticket was asked for: it would follow it."""
        begun = self.begun.get(peer, 0)
        try:
            ticket = await self._ticket(peer)
            if typing and self.begun.get(peer, 0) != begun:
                return
            if ticket:
                await self.api.send_typing(peer, ticket, typing)
        except Exception as exc:  # a courtesy: never a reason to fail a reply
            if isinstance(exc, ApiError):  # (a ticket the server no longer takes, say)
                self.tickets.pop(peer, None)  # the next typing asks for a new one
            self.log.debug("typing not shown to %s: %s", peer, exc)

    async def _ticket(self, peer: str) -> str | None:
        kept = self.tickets.get(peer)
        now = self.clock.now()
        if kept is not None and now - kept[1] < TYPING_TICKET_S:
            return kept[0]
        answer = await self.api.get_config(peer, await self.state.context_token(peer))
        ticket = answer.get("typing_ticket")
        if not isinstance(ticket, str) or not ticket:
            return None
        self.tickets[peer] = (ticket, now)
        return ticket


def _unknown(what: str, exc: Exception) -> SendError:
    """A send whose answer was lost. iLink sends the bot no echo of its own messages, so
    nothing can ever show whether it went out: it is final, never sent a second time."""
    return SendError(
        f"the {what} may or may not have gone out ({exc}); iLink gives no echo to tell: "
        "not sent again",
        transient=False,
        code="outcome_unknown",
    )
