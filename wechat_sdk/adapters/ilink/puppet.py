"""The Puppet port over iLink, for one bot account: login (kept, or by QR code), the long
poll of ``getupdates``, message payloads and files, sends, typing and reply windows."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from wechat_sdk.adapters.ilink import cdn
from wechat_sdk.adapters.ilink.api import (
    LONG_POLL_S,
    ApiError,
    BadAnswer,
    ILinkApi,
    ILinkError,
    SessionExpired,
    TimedOut,
    Unreachable,
)
from wechat_sdk.adapters.ilink.copies import copy_key
from wechat_sdk.adapters.ilink.login import LoginGaveUp, VerifyCodes, qr_login
from wechat_sdk.adapters.ilink.payloads import Payloads
from wechat_sdk.adapters.ilink.sending import Sender
from wechat_sdk.adapters.ilink.session import KeptLogin, SessionFile, server_of
from wechat_sdk.adapters.ilink.state import Delivered, ILinkState, PeerWindow, SqliteILinkState
from wechat_sdk.adapters.ilink.wire import ReadMessage, parse_message, read_message
from wechat_sdk.capabilities import ILINK_CAPABILITIES, Capabilities
from wechat_sdk.clock import BACKGROUND, Clock
from wechat_sdk.logtext import shown
from wechat_sdk.puppet import (
    Contact,
    ErrorEvent,
    HeartbeatEvent,
    LoginEvent,
    LogoutEvent,
    Message,
    MessageEvent,
    MessageKind,
    OutboundFile,
    PuppetError,
    PuppetEvent,
    ReadyEvent,
    ReplyWindow,
    Room,
    SendError,
    VerifyCodeOutcome,
)

__all__ = ["ILinkOptions", "ILinkPuppet", "clock_offset", "said_at"]

log = logging.getLogger("wechat_sdk.adapters.ilink")

HEARTBEAT_EVERY_S = 15.0
#: a start re-emits the user messages said this recently: those a killed process recorded
#: but never took in are answered (the gateway answers them up to an hour old, and its
#: dedupe drops those it already handled; older ones it would not answer)
REPLAY_S = 3600.0
#: recorded messages are forgotten after this long (quotes of older ones show their cut text)
KEEP_S = 30 * 86400.0
PRUNE_EVERY_S = 86400.0
#: waits after a failed poll: a short one, and a long one after FAILURES_BEFORE_LONG
RETRY_S, LONG_RETRY_S, FAILURES_BEFORE_LONG = 2.0, 30.0, 3
#: polls in a row that got no answer at all (no connection, or none within the server's
#: own hold and POLL_MARGIN_S) before the link counts as down: the event stream ends, and
#: the gateway shows the account reconnecting (as for any link) and starts it again after
#: its backoff
UNANSWERED_BEFORE_DOWN = 3
#: with no ``Date`` header to read the server's clock by, a message's time is its own
#: (``create_time_ms``) unless it is this far from ours
CLOCK_SKEW_S = 300.0
#: the server's clock is taken to differ from ours only beyond this: its ``Date`` header
#: counts whole seconds, so a clock equal to ours can read up to about a second off
DATE_RESOLUTION_S = 2.0
#: the bounds put on the server's long-poll hint (``longpolling_timeout_ms``): under 5 s
#: an idle account would hammer the server; over 2 min a connection a proxy or a NAT
#: dropped without a word would go unnoticed that long (Tencent's server suggests 35 s)
POLL_HINT_MS = (5_000, 120_000)
#: how long a long poll waits for its answer past the server's hold (the answer's way back)
POLL_MARGIN_S = 5.0
#: the least time from one poll to the next when its answer brought no new message: a
#: server that ends polls at once (another client polling with the bot's token ends each
#: one; a server giving the same batch again, its cursor ignored) is asked once a second,
#: not as fast as it answers. A poll held as iLink holds it (35 s) never waits for it
MIN_POLL_GAP_S = 1.0
#: how long a number given to the login waits for the server's word on it
VERIFY_ANSWER_S = 15.0


class _LinkDown(Exception):
    """The iLink server gives no answer at all (a refused or dropped connection, or a
    server that takes polls and answers none): the link is down."""


@dataclass(frozen=True)
class ILinkOptions:
    """An account's ``puppetOptions`` for iLink, checked (see :mod:`.service`)."""

    base_url: str
    cdn_base_url: str
    bot_agent: str
    route_tag: str | None = None


def said_at(said: float, *, now: float, server_offset: float | None) -> float:
    """When a message was said, on our clock.

    ``said`` is its ``create_time_ms`` in seconds (0: not given), on the server's clock;
    ``server_offset`` is how far ours is ahead of the server's (from the ``Date`` headers
    of ``getupdates`` answers; None: not known). A message with no time is stamped with
    ``now``, when it arrived; so is one said after it arrived (beyond the ``Date`` header's
    resolution, or, the server's clock unknown, beyond :data:`CLOCK_SKEW_S`).

    >>> said_at(880.0, now=1000.0, server_offset=120.0)  # the server's clock 2 min behind
    1000.0
    """
    if not said:
        return now
    if server_offset is None:  # the server's clock unknown: its time only if near ours
        return said if abs(said - now) <= CLOCK_SKEW_S else now
    if abs(server_offset) > DATE_RESOLUTION_S:
        said += server_offset
    return min(said, now)


def clock_offset(kept: float | None, *, now: float, server_time: float | None) -> float | None:
    """How far our clock is ahead of the server's, read from an answer's ``Date`` header
    (``server_time``); without one, ``kept`` (None: not known). The offset ``kept`` from
    earlier answers stays while a new reading is within the header's resolution of it:
    read afresh each time, whole seconds would move message times back and forth by up to
    one, and two messages a moment apart in two answers could swap their order."""
    if server_time is None:  # (an answer without the header: the offset known stays)
        return kept
    reading = now - server_time
    if kept is not None and abs(reading - kept) <= DATE_RESOLUTION_S:
        return kept
    return reading


@dataclass(frozen=True)
class PollHold:
    """How long the server holds a long poll, as the puppet waits for it (seconds, before
    :data:`POLL_MARGIN_S`), and whether that is the server's whole hold: not when its
    hint is over the longest of :data:`POLL_HINT_MS`, cut down to it. Before any hint:
    iLink's 35 s."""

    seconds: float = LONG_POLL_S
    whole: bool = True


def poll_hold(hint_ms: object, current: PollHold) -> PollHold:
    """The next long poll's hold: the server's hint within :data:`POLL_HINT_MS` (clamped
    as an integer: a hint past any float must not overflow), else ``current``."""
    if not isinstance(hint_ms, int) or isinstance(hint_ms, bool) or hint_ms <= 0:
        return current
    shortest, longest = POLL_HINT_MS
    return PollHold(min(max(hint_ms, shortest), longest) / 1000, whole=hint_ms <= longest)


class ILinkPuppet:
    """The Puppet port over Tencent's iLink bot API, for one bot account."""

    def __init__(
        self,
        *,
        account_id: str,
        account_dir: Path,
        options: ILinkOptions,
        clock: Clock,
        qr_max_timeouts: int = 3,
        sessions: SessionFile | None = None,
        open_state: Callable[[], ILinkState] | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> None:
        self.account_id = account_id
        #: raises unless the account may still send from here (a cluster's lease)
        self._before_send = before_send
        self.account_dir = account_dir
        self.options = options
        self.clock = clock
        self.qr_max_timeouts = qr_max_timeouts
        self._log = logging.LoggerAdapter(log, {"account": account_id})
        # the kept login and the state: files in account_dir unless given (Redis: another
        # gateway taking the account over resumes it)
        self._sessions = sessions if sessions is not None else SessionFile(account_dir)
        self._open_state = open_state or (
            lambda: SqliteILinkState.in_dir(account_dir, account_id, clock)
        )
        self._self_id: str | None = None
        self._queue: asyncio.Queue[PuppetEvent | None] | None = None
        #: set when the gateway comes back for an event and none is left: it has handled
        #: (dedupe-marked) every one emitted before
        self._taken = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None
        self._api: ILinkApi | None = None
        self._state: ILinkState | None = None
        self._sender: Sender | None = None
        self._windows: dict[str, PeerWindow] = {}
        self._payloads: Payloads | None = None
        self._relogin = asyncio.Event()
        #: how far our clock is ahead of the iLink server's (None: not known yet)
        self._server_offset: float | None = None
        #: the number the phone shows, when the QR login asks for it (need_verifycode)
        self._codes = VerifyCodes()

    # ------------------------------------------------------------ the port

    @property
    def self_id(self) -> str | None:
        return self._self_id

    @property
    def capabilities(self) -> Capabilities:
        return ILINK_CAPABILITIES

    async def start(self) -> None:
        await self._close()
        self._queue = asyncio.Queue()
        # no cookies kept (nor matched against each call), as Tencent's client keeps none
        self._http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        # the proxy of the environment (HTTPS_PROXY, NO_PROXY), as for any HTTP client: the
        # hosts are the configured server and CDN only, never one a message names
        self._api = ILinkApi(
            self._http,
            self.options.base_url,
            self.options.cdn_base_url,
            bot_agent=self.options.bot_agent,
            route_tag=self.options.route_tag,
            proxies=urllib.request.getproxies(),
        )
        state = self._open_state()
        self._state = state
        await self._forget_another_server(state)
        await state.prune(self.clock.now() - KEEP_S)
        self._windows = await state.windows()
        self._payloads = Payloads(state)
        self._sender = Sender(
            self._api,
            state,
            self.clock,
            self._log,
            self._windows,
            on_sent=self._sent,
            on_expired=self._relogin.set,
            before_send=self._before_send,
        )
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run()), loop.create_task(self._heartbeats())]

    async def stop(self) -> None:
        if self._api is not None and self._api.token and self._self_id is not None:
            with contextlib.suppress(ILinkError, SendError):
                if self._before_send is not None:  # (another gateway may run it now)
                    self._before_send()
                await self._api.notify("notifystop")
        await self._close()

    async def events(self) -> AsyncIterator[PuppetEvent]:
        queue = self._queue
        if queue is None:
            return
        while True:
            if queue.empty():
                self._taken.set()
            item = await queue.get()
            if item is None:
                return
            yield item

    async def message(self, message_id: str) -> Message:
        read = await self._load(message_id)
        if read is None:
            raise PuppetError(f"no iLink message {shown(message_id)} is known")
        return read.message

    async def contact(self, contact_id: str) -> Contact:
        return Contact(id=contact_id, name=contact_id)  # iLink gives ids, no names

    async def room(self, room_id: str) -> Room:
        raise PuppetError("iLink has no groups (direct chats only)")

    async def room_alias(self, room_id: str, contact_id: str) -> str | None:
        return None

    async def send_text(
        self, conversation_id: str, text: str, mention_ids: tuple[str, ...] = ()
    ) -> str | None:
        return await self._sending().send_text(conversation_id, text)

    async def send_file(self, conversation_id: str, file: OutboundFile) -> str | None:
        return await self._sending().send_file(conversation_id, file)

    def download(self, message_id: str, max_bytes: int) -> AsyncIterator[bytes]:
        return self._download(message_id, max_bytes)

    async def _download(self, message_id: str, max_bytes: int) -> AsyncIterator[bytes]:
        read = await self._load(message_id)
        if read is None or read.media is None or self._api is None:
            raise PuppetError(f"iLink message {shown(message_id)} has no file")
        known = read.message.file.size if read.media.word == "file" and read.message.file else 0
        async for chunk in cdn.download(self._api, read.media, max_bytes, known):
            yield chunk

    async def logout(self) -> None:
        self._relogin.set()  # the kept login is forgotten; a new QR login follows
        self._logged_out("logged out by the bot")

    async def set_typing(self, conversation_id: str, typing: bool) -> None:
        if self._sender is not None and self._self_id is not None:
            await self._sender.set_typing(conversation_id, typing)

    def reply_window(self, conversation_id: str) -> ReplyWindow | None:
        if self._sender is None:
            return ReplyWindow(remaining=0, closes_at=0.0)
        return self._sender.window(conversation_id)

    async def submit_verify_code(self, code: str) -> VerifyCodeOutcome:
        """The number the phone shows, for the QR login asking for it (TakesVerifyCode)."""
        return await self._codes.submit(code, self.clock, VERIFY_ANSWER_S)

    # ------------------------------------------------------------ login and polling

    async def _run(self) -> None:
        BACKGROUND.set(True)  # a virtual clock's world does not wait for the poll
        assert self._api is not None
        try:
            kept, _ = self._sessions.load()
            login = await self._checked(kept) if kept is not None else None
            kept = login  # a refused login is no longer offered to binded_redirect
            while True:
                if login is None:
                    login = await self._qr_login(kept)
                await self._serve(login)
                kept, login = None, None  # the session expired: a new QR login
        except LoginGaveUp as exc:
            # the gateway has stopped the account after qrMaxTimeouts expired codes; a
            # server that gave no code at all: the stream ends and the gateway reconnects
            self._log.error("%s reason=login_gave_up", exc)
            self._emit(ErrorEvent(str(exc), fatal=True))
            self._end()
        except _LinkDown as exc:  # as a dropped link of any puppet: the gateway reconnects
            self._log.warning("%s: the link is down reason=ilink_unreachable", exc)
            self._end()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # (imported here: only an account held by lease, on Redis, raises it)
            from wechat_sdk.stores.redis.fencing import LeaseLost

            if isinstance(exc, LeaseLost):  # a state write refused: another gateway runs it
                self._log.warning("iLink polling stopped here: %s reason=lease_lost", exc)
            else:  # a bug: the stream ends, the gateway starts again
                self._log.exception("iLink polling stopped: %s", exc)
            self._end()

    async def _forget_another_server(self, state: ILinkState) -> None:
        """What is kept from another server than the one ``baseUrl`` names now is not used
        there: the login and its earlier tokens, the long poll's cursor, the messages and
        the peers (their context tokens and windows) are dropped, and a QR login follows.
        The state goes first, durably: a crash before the login's record drops it again
        at the next start. A login kept before its server was recorded is taken for this
        one's (no scan after an upgrade), and recorded so."""
        configured = server_of(self.options.base_url)
        recorded = self._sessions.server()
        if recorded == configured:
            return
        if recorded is None:
            kept, _ = self._sessions.load()
            if kept is not None:
                self._sessions.keep(kept, configured)
            return
        self._log.warning(
            "account %s: the kept iLink login is from %s, but baseUrl is now %s: it is not "
            "used, nor that server's long-poll cursor and context tokens; a new QR login "
            "starts reason=ilink_server_changed",
            self.account_id,
            recorded,
            configured,
        )
        await state.forget_all()
        await state.flush()
        self._sessions.moved(configured)

    async def _checked(self, kept: KeptLogin) -> KeptLogin | None:
        """The kept login, if the server still takes its token."""
        api = self._use(kept)
        try:
            await api.notify("notifystart")
        except SessionExpired:
            self._log.debug(  # the gateway's line says it: "logged out (session expired)"
                "the kept iLink login was refused (session expired): a new QR login starts "
                "reason=session_expired"
            )
            self._sessions.expire()
            self._emit(LogoutEvent(kept.bot_id, "session expired"))
            return None
        except Unreachable as exc:
            # no answer at all (none within the call's time either: a hung server takes
            # calls and answers none): the account is not ready before the server answers
            raise _LinkDown(f"the iLink server did not answer notifystart ({exc})") from None
        except ILinkError as exc:
            # an answer, if a bad one: the poll will tell, no reason to log in again
            self._log.info("notifystart failed (%s): polling anyway", exc)
        return kept

    async def _qr_login(self, kept: KeptLogin | None) -> KeptLogin:
        assert self._api is not None
        self._api.base_url = self.options.base_url
        _, earlier = self._sessions.load()
        login = await qr_login(
            self._api,
            clock=self.clock,
            emit=self._emit,
            log=self._log,
            earlier_tokens=earlier,
            max_codes=self.qr_max_timeouts,
            kept=kept,
            codes=self._codes,
        )
        self._sessions.keep(login, server_of(self.options.base_url))
        self._use(login)
        with contextlib.suppress(ILinkError):
            await self._api.notify("notifystart")
        return login

    def _use(self, login: KeptLogin) -> ILinkApi:
        assert self._api is not None
        self._api.token = login.token
        self._api.base_url = login.base_url or self.options.base_url
        return self._api

    async def _serve(self, login: KeptLogin) -> None:
        """Logged in: events, then the long poll until the session expires."""
        assert self._state is not None
        self._relogin.clear()
        self._self_id = self._payloads_().self_id = login.bot_id
        self._emit(LoginEvent(login.bot_id))
        self._emit(ReadyEvent())
        for message_id in await self._state.recent(self.clock.now() - REPLAY_S):
            read = await self._load(message_id)
            if read is not None and read.message.kind is not MessageKind.UNKNOWN:
                self._emit(MessageEvent(message_id))  # not handled yet, or dropped as seen
        loop = asyncio.get_running_loop()
        poll = loop.create_task(self._poll())
        relogin = loop.create_task(self._relogin.wait())
        try:
            done, _ = await asyncio.wait({poll, relogin}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (poll, relogin):
                task.cancel()
            await asyncio.gather(poll, relogin, return_exceptions=True)
        if poll in done and not poll.cancelled():
            poll.result()  # a bug in the poll: raised here
        if self._self_id is not None:  # the session expired (seen by the poll or a send)
            self._expired(login)
        else:  # the bot logged out
            self._sessions.forget()

    async def _poll(self) -> None:
        assert self._api is not None and self._state is not None
        # a poll cut while it waited for its fsync (a restart, a relogin) left its cursor
        # committed but maybe not on disk: on disk before the server hears it
        await self._state.flush()
        cursor = await self._state.cursor()
        hold = PollHold()
        failures = 0
        unanswered = 0  # of the failures in a row, those with no answer at all
        next_poll = 0.0  # (the clock's time) not before: the last answer brought nothing new
        while True:
            if (wait := next_poll - self.clock.now()) > 0:
                await self.clock.sleep(wait)
            next_poll = self.clock.now() + MIN_POLL_GAP_S
            try:
                answer = await self._api.get_updates(cursor, hold.seconds + POLL_MARGIN_S)
            except SessionExpired:
                self._expired_now()
                return
            except Unreachable as exc:
                if isinstance(exc, TimedOut) and not hold.whole:
                    continue  # a poll the server holds longer than we wait, cut: ask again
                # no answer at all: a refused or dropped connection, or none within the
                # server's own hold and the margin (it ends an empty poll in its time)
                unanswered += 1
                if unanswered >= UNANSWERED_BEFORE_DOWN:
                    raise _LinkDown(
                        f"the iLink server did not answer {unanswered} polls in a row "
                        f"(the last: {exc})"
                    ) from None
                failures = await self._failed(failures, exc)
                continue
            except (BadAnswer, ApiError) as exc:
                unanswered = 0  # an answer, if a bad one: the server is there
                failures = await self._failed(failures, exc)
                continue
            unanswered = 0
            msgs = answer.body.get("msgs")
            if not isinstance(msgs, list | None):  # what it holds cannot be read: the
                # cursor stays where it was, and the server is asked again
                bad = BadAnswer(f"getupdates: msgs is a {type(msgs).__name__}, not a list")
                failures = await self._failed(failures, bad)
                continue
            if failures:
                self._log.info("getupdates answers again after %d failures", failures)
                failures = 0
            hold = poll_hold(answer.body.get("longpolling_timeout_ms"), hold)
            buf = answer.body.get("get_updates_buf")
            new_cursor = buf if isinstance(buf, str) and buf else None
            batch = self._batch(msgs or [], answer.server_time)
            if not batch and new_cursor in (None, cursor):
                # an empty poll that moves nothing: no write (an idle account polls twice a
                # minute, and each write is a durable commit)
                self._emit(HeartbeatEvent("getupdates"))
                continue
            recorded = await self._state.record([d for d, _ in batch], new_cursor)
            if recorded.added:  # (new messages: the next poll goes at once, others may follow)
                next_poll = 0.0
            self._taken.clear()
            cursor = new_cursor or cursor
            by_id: dict[str, tuple[Delivered, ReadMessage]] = {}
            for d, r in batch:  # (an id twice in the batch: its first, the recorded)
                by_id.setdefault(d.id, (d, r))
            for message_id in recorded.added:
                delivered, read = by_id[message_id]
                read = await self._payloads_().keep(read)
                if delivered.opens_window:
                    at = delivered.at
                    counted = self._windows.get(read.peer_id)
                    if counted is None or counted.user_at is None or at >= counted.user_at:
                        self._windows[read.peer_id] = PeerWindow(at, 0)
                if read.notes:
                    self._odd(read)
                if read.message.kind is not MessageKind.UNKNOWN:
                    self._emit(MessageEvent(message_id))
            for message_id, original in recorded.again:
                self._again(by_id[message_id][1], original)
            self._emit(HeartbeatEvent("getupdates"))
            # on disk before the next poll tells the server the batch is ours; once the
            # gateway has taken the batch in, so that the same fsync makes its dedupe marks
            # durable (the replies, sent once they are, then wait for no other)
            await self._taken.wait()
            await self._state.flush()

    def _batch(
        self, msgs: list[Any], server_time: float | None
    ) -> list[tuple[Delivered, ReadMessage]]:
        """A ``getupdates`` answer's messages, read; one that cannot be read, whatever is
        wrong with it, is skipped with a report, never the batch (the cursor moves past
        it: delivered again, it would fail again)."""
        now = self.clock.now()
        server_offset = clock_offset(self._server_offset, now=now, server_time=server_time)
        if server_offset is not None:
            self._server_offset = server_offset
        out: list[tuple[Delivered, ReadMessage]] = []
        for data in msgs:
            try:
                out.append(self._delivered(data, now, server_offset))
            except Exception as exc:
                why = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
                self._report(
                    f"an iLink message that cannot be read was skipped: {why}", "bad_message"
                )
        return out

    def _delivered(
        self, data: Any, now: float, server_offset: float | None
    ) -> tuple[Delivered, ReadMessage]:
        """One message of a batch, read, and stamped with when it was said on our clock
        (its window opens then, and the gateway reads that time)."""
        parsed = parse_message(data)
        read = read_message(parsed, bot_id=self._self_id)
        at = said_at(read.message.timestamp, now=now, server_offset=server_offset)
        read = dataclasses.replace(read, message=dataclasses.replace(read.message, timestamp=at))
        raw = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        delivered = Delivered(
            read.message.id,
            read.peer_id,
            raw,
            read.message.text,
            read.from_user,
            read.context_token,
            at,
            in_group=bool(parsed.group_id),
            copy_key=copy_key(parsed),
        )
        return delivered, read

    def _again(self, read: ReadMessage, original: str) -> None:
        """A message recorded before, delivered again: under its own id, or as a copy under
        a new id (see :mod:`.copies`; said in the log). Handed on again as the recorded
        one, as any puppet hands on a message delivered twice: the gateway's dedupe drops
        it and counts it (``duplicate``); the state recorded nothing of it but its token."""
        if read.message.id != original:
            self._log.info(
                "iLink message %s from %s is a copy of iLink message %s (the same sender, "
                "time and content, delivered again under a new id): handed on as that one, "
                "a duplicate reason=ilink_duplicate",
                shown(read.message.id),
                shown(read.peer_id),
                shown(original),
            )
        if read.message.kind is not MessageKind.UNKNOWN:  # (as its original was, or not)
            self._emit(MessageEvent(original))

    def _odd(self, read: ReadMessage) -> None:
        notes = "; ".join(read.notes)
        self._report(
            f"iLink message {shown(read.message.id)} from {shown(read.peer_id)}: {notes}",
            "odd_message",
        )

    def _report(self, text: str, reason: str) -> None:
        """Bad wire data: one line in the gateway's log (``puppet reported an error: ...``)
        and the account's last error, through an ErrorEvent; here at debug level only."""
        self._log.debug("%s reason=%s", text, reason)
        self._emit(ErrorEvent(f"{text} reason={reason}"))

    async def _failed(self, failures: int, exc: Exception) -> int:
        failures += 1
        if failures == 1 or failures % FAILURES_BEFORE_LONG == 0:
            self._report(
                f"getupdates failed ({failures} in a row): {exc}; polling again", "poll_failed"
            )
        await self.clock.sleep(LONG_RETRY_S if failures % FAILURES_BEFORE_LONG == 0 else RETRY_S)
        return failures

    def _expired_now(self) -> None:
        self._relogin.set()

    def _expired(self, login: KeptLogin) -> None:
        # the gateway's line says it: "logged out (session expired): ..."
        self._log.debug(
            "logged out: session expired (iLink errcode -14): a new QR login starts "
            "reason=session_expired"
        )
        self._sessions.expire()
        self._logged_out("session expired", login.bot_id)

    def _logged_out(self, reason: str, bot_id: str | None = None) -> None:
        me = bot_id or self._self_id
        if self._self_id is None and bot_id is None:
            return
        self._self_id = None
        if self._api is not None:
            self._api.token = None
        self._emit(LogoutEvent(me or "", reason))

    async def _heartbeats(self) -> None:
        """A heartbeat every HEARTBEAT_EVERY_S; old messages, and the peers not heard
        from since, forgotten once a day (and at each start), so a gateway that runs for
        months keeps KEEP_S of them."""
        BACKGROUND.set(True)
        pruned = self.clock.now()
        while True:
            await self.clock.sleep(HEARTBEAT_EVERY_S)
            self._emit(HeartbeatEvent())
            if self.clock.now() - pruned >= PRUNE_EVERY_S and self._state is not None:
                pruned = self.clock.now()
                try:
                    await self._state.prune(pruned - KEEP_S)
                except Exception as exc:  # (a lease lost: the poll says it and stops)
                    self._log.warning("could not forget old iLink messages: %s", exc)
                    continue
                for peer, window in list(self._windows.items()):  # (as the state did)
                    if window.user_at is not None and window.user_at < pruned - KEEP_S:
                        del self._windows[peer]
                        if self._sender is not None:
                            self._sender.forget(peer)

    # ------------------------------------------------------------ payloads

    async def _load(self, message_id: str) -> ReadMessage | None:
        return None if self._payloads is None else await self._payloads.load(message_id)

    def _sent(self, message_id: str, peer: str, text: str, word: str) -> None:
        if self._payloads is not None:
            self._payloads.sent(message_id, peer, text, word, self.clock.now())
        self._emit(MessageEvent(message_id))  # the self-echo, as a Wechaty puppet gives it

    def _payloads_(self) -> Payloads:
        assert self._payloads is not None
        return self._payloads

    def _sending(self) -> Sender:
        if self._sender is None or self._self_id is None:
            raise SendError("not logged in to iLink", code="not_logged_in")
        return self._sender

    # ------------------------------------------------------------ plumbing

    def _emit(self, event: PuppetEvent) -> None:
        if self._queue is not None:
            self._queue.put_nowait(event)

    def _end(self) -> None:
        if self._queue is not None:
            self._queue.put_nowait(None)

    async def _close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self._self_id = None
        self._end()
        self._queue = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._state is not None:
            await self._state.close()
            self._state = None
        self._sender = None
        self._payloads = None
