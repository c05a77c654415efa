"""What the world's iLink server knows: its bots (tokens, queues, cursors, context tokens,
reply windows), their QR codes and the CDN. No HTTP here (that is :mod:`.server`).

Each bot account keeps one queue of the user messages said to it, numbered in order.
``getupdates`` hands out a cursor (``get_updates_buf``) naming the last number given; the
next request carrying it acknowledges everything up to it, and a request with an empty
cursor starts after the last acknowledged number. So a client that persists its cursor
only after recording the messages resumes without loss after a crash, and one that loses
its cursor gets again only what it never acknowledged (what was acknowledged is dropped,
so an older cursor than the last one gets only what is left). The queue outlives sessions: what
is said while the session is expired is delivered after the next login.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simulator.ilink.cdn import CdnStore
from simulator.ilink.login import QrBook
from simulator.ilink.rules import ReplyWindow
from wechat_sdk.clock import BACKGROUND, Clock

if TYPE_CHECKING:
    from simulator.account import SimAccount
    from simulator.ilink.login import QrCode
    from simulator.ilink.server import ILinkServer
    from simulator.world import SimulatedWeChat

__all__ = [
    "DUPLICATE_AFTER_S",
    "ILinkBot",
    "ILinkState",
    "Queued",
    "bot_id_for",
    "process_id_base",
    "wait_changed",
]

log = logging.getLogger("simulator.ilink")

#: how long after a message its duplicate arrives (``duplicate_next``)
DUPLICATE_AFTER_S = 3.0
#: how long the heartbeat_silence fault keeps polls empty, by default
SILENCE_S = 60.0
#: seconds getupdates is held under the slow_poll fault, unless the fault says
SLOW_POLL_S = 40.0
#: where a world numbers its messages on the wire (uint64, past what a double holds)
WIRE_ID_BASE = 7_300_000_000_000_000_000


def process_id_base() -> int:
    """Where a server alone in its process (``simulator serve``) numbers its messages:
    past :data:`WIRE_ID_BASE` by the time it starts, in tens of nanoseconds. A process
    started later numbers past every id an earlier one gave (that one would have to give
    over 100 ids each microsecond it ran to reach it), so a client that outlives a
    restart of the server never takes a new message for one it had. Below 2**63 for six
    centuries: a store that keeps ids as signed 64-bit numbers reads them."""
    return WIRE_ID_BASE + time.time_ns() // 10


def bot_id_for(seed: int, account_id: str) -> str:
    """An ``ilink_bot_id`` for an account: stable for a seed, ``<12 hex>@im.bot``."""
    digest = hashlib.sha256(f"{seed}:{account_id}".encode()).hexdigest()
    return f"{digest[:12]}@im.bot"


async def wait_changed(clock: Clock, event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` of the world's time passed; True if set.

    The timer is a background sleeper: on a virtual clock an open long poll never keeps
    ``run_until_idle`` busy, and is woken when time passes its end.
    """
    if event.is_set():
        return True
    if seconds <= 0:
        return False
    token = BACKGROUND.set(True)
    try:
        timer = asyncio.ensure_future(clock.sleep(seconds))
    finally:
        BACKGROUND.reset(token)
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({timer, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        waiter.cancel()
    return event.is_set()


@dataclass
class Queued:
    """One delivery of a user message to a bot (a duplicate is a second one)."""

    seq: int
    message_id: str  # the world's id
    not_before: float
    #: the world's messages said with it, whose items it carries after its own
    #: (:meth:`ILinkBot.one_message`)
    also: list[str] = field(default_factory=list)


@dataclass
class ILinkBot:
    """One iLink bot account, as the server sees it."""

    state: ILinkState
    account_id: str
    token: str | None = None
    queue: deque[Queued] = field(default_factory=deque)  # not acknowledged yet, in order
    next_seq: int = 1
    acked: int = 0
    context_tokens: dict[str, str] = field(default_factory=dict)
    windows: dict[str, ReplyWindow] = field(default_factory=dict)
    typing_tickets: dict[str, str] = field(default_factory=dict)
    typing: dict[str, int] = field(default_factory=dict)  # user -> 1 typing, 2 cancelled
    #: client_id -> message_id of each accepted sendmessage (a retry is answered, not sent)
    client_ids: dict[str, int] = field(default_factory=dict)
    #: the number of the poll allowed to answer (a newer poll ends an older one)
    poll_generation: int = 0
    disconnects: int = 0  # bumped by the disconnect fault: open polls are cut
    silent_until: float = 0.0
    slow_poll_s: float = SLOW_POLL_S
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    #: while :meth:`one_message` is open: a list, holding the delivery its messages join
    #: once the first is said
    joining: list[Queued] | None = None

    @property
    def sim(self) -> SimAccount:
        return self.state.world.accounts[self.account_id]

    def notify(self) -> None:
        """Wake every open poll of this bot."""
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    # -------------------------------------------------------- session

    def log_in(self) -> str:
        """A confirmed QR code: a new token (the previous one stops working)."""
        if self.token is not None:
            self.state.tokens.pop(self.token, None)
        self.token = f"{self.sim.wxid}:{secrets.token_hex(24)}"
        self.state.tokens[self.token] = self.account_id
        self.sim.session = True
        self.state.world._log(self.sim, "login")
        self.notify()
        return self.token

    def expire(self, reason: str = "session expired") -> None:
        """The token stops working: every call with it answers errcode -14."""
        if self.token is not None:
            self.state.tokens.pop(self.token, None)
        self.token = None
        self.sim.session = False
        self.state.world._log(self.sim, "logout", reason=reason)
        self.notify()

    def fault_now(self, kind: str, seconds: float | None) -> None:
        """The faults that happen at once (the counted ones are taken by the server)."""
        now = self.state.world.time.now()
        if kind == "logout":
            self.expire()
        elif kind == "disconnect":
            self.disconnects += 1
            self.notify()
        elif kind == "heartbeat_silence":
            self.silent_until = now + (seconds if seconds is not None else SILENCE_S)
            self.notify()

    # -------------------------------------------------------- inbound

    def deliver(self, message_id: str, *, duplicate: bool) -> None:
        """A user message said to the bot: it opens the user's window and waits for a poll."""
        world = self.state.world
        message = world._messages[message_id]
        if message.room_id is not None:  # iLink bots are in direct chats only
            world._log(self.sim, "not_delivered", message_id=message_id, reason="group")
            return
        peer = message.talker_id
        joined = self.joining[0] if self.joining else None
        if joined is not None and world._messages[joined.message_id].talker_id != peer:
            raise ValueError(f"one_message() is one user's: not {peer!r} too")
        self.window(peer).user_wrote(message.timestamp)
        self.context_token(peer)
        now = world.time.now()
        if joined is not None:  # one message of several, held until the block ends
            joined.also.append(message_id)
            return
        if self.joining is not None:
            self.joining.append(self._enqueue(message_id, math.inf))
            return
        self._enqueue(message_id, now)
        if duplicate:
            world._log(self.sim, "fault", kind="duplicate_next", message_id=message_id)
            self._enqueue(message_id, now + DUPLICATE_AFTER_S)
        self.notify()

    @contextlib.contextmanager
    def one_message(self) -> Iterator[None]:
        """The user messages said to this bot within the block (by one user) reach it as
        **one** iLink message: the first one's ``message_id``, and the items of each in the
        order said (a voice and an image, say). It is held back until the block ends (no
        poll gets it half made); a ``duplicate_next`` fault does not apply within it."""
        if self.joining is not None:
            raise RuntimeError(f"{self.account_id}: one_message() is open already")
        self.joining = []
        try:
            yield
        finally:
            held, self.joining = self.joining, None
            for queued in held:
                queued.not_before = self.state.world.time.now()
                self.notify()

    def _enqueue(self, message_id: str, not_before: float) -> Queued:
        queued = Queued(self.next_seq, message_id, not_before)
        self.queue.append(queued)
        self.next_seq += 1
        return queued

    def window(self, peer: str) -> ReplyWindow:
        window = self.windows.get(peer)
        if window is None:
            window = self.windows[peer] = ReplyWindow()
        return window

    def context_token(self, peer: str) -> str:
        token = self.context_tokens.get(peer)
        if token is None:
            token = self.context_tokens[peer] = base64.b64encode(secrets.token_bytes(24)).decode()
        return token

    def typing_ticket(self, peer: str) -> str:
        ticket = self.typing_tickets.get(peer)
        if ticket is None:
            ticket = self.typing_tickets[peer] = base64.b64encode(secrets.token_bytes(16)).decode()
        return ticket

    def cursor(self, seq: int) -> str:
        # the id base too: the cursor of another run of the server, whose numbers start
        # alike, is foreign (it would acknowledge messages its client never had)
        mark = {"bot": self.sim.wxid, "base": self.state.id_base, "seq": seq}
        raw = json.dumps(mark, separators=(",", ":"))
        return base64.b64encode(raw.encode()).decode()

    def read_cursor(self, buf: str) -> int:
        """The number a cursor names, acknowledging it; an empty or foreign one: the last
        acknowledged number."""
        if not buf:
            return self.acked
        try:
            data = json.loads(base64.b64decode(buf, validate=True))
            ours = data.get("bot") == self.sim.wxid and data.get("base") == self.state.id_base
            seq = data["seq"] if ours else None
        except (ValueError, binascii.Error, TypeError, KeyError, AttributeError, RecursionError):
            seq = None
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < self.next_seq:
            log.warning("%s: ignoring a get_updates_buf this server did not give", self.account_id)
            return self.acked
        if seq > self.acked:
            self.acked = seq
            while self.queue and self.queue[0].seq <= seq:  # acknowledged: gone
                self.queue.popleft()
        return seq

    def ready(self, after: int, now: float, limit: int = 100) -> list[Queued]:
        return [q for q in self.queue if q.seq > after and q.not_before <= now][:limit]

    def next_due(self, after: int) -> float | None:
        due = [q.not_before for q in self.queue if q.seq > after]
        return min(due) if due else None


class ILinkState:
    """The iLink side of one world: bots by account and by token, QR codes, the CDN."""

    def __init__(self, world: SimulatedWeChat) -> None:
        self.world = world
        self.bots: dict[str, ILinkBot] = {}
        self.tokens: dict[str, str] = {}  # live token -> account id
        self.qr = QrBook(self)
        self.cdn = CdnStore()
        #: where the wire ids of the world's messages start (and what its cursors name):
        #: the same in every world, so in-process runs are deterministic; ``simulator
        #: serve`` sets one of its own (:func:`process_id_base`)
        self.id_base = WIRE_ID_BASE
        self._wire_ids: dict[str, int] = {}
        self._world_ids: dict[int, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # set by the running server: its bases (``baseurl`` of a login, media full_url)
        self.base_url = ""
        self.cdn_base_url = ""
        self.server: ILinkServer | None = None

    def sim(self, account_id: str) -> SimAccount:
        sim = self.world.accounts.get(account_id)
        if sim is None or sim.transport != "ilink":
            raise KeyError(f"no iLink bot account {account_id!r} in the world")
        return sim

    def bot(self, account_id: str) -> ILinkBot:
        bot = self.bots.get(account_id)
        if bot is None:
            self.sim(account_id)
            bot = self.bots[account_id] = ILinkBot(self, account_id)
        return bot

    def bot_for_token(self, token: str) -> ILinkBot | None:
        account_id = self.tokens.get(token)
        return self.bots.get(account_id) if account_id is not None else None

    def wire_id(self, message_id: str) -> int:
        """The uint64 ``message_id`` of a world message on the wire."""
        n = self._wire_ids.get(message_id)
        if n is None:
            n = self.id_base + len(self._wire_ids) + 1
            self._wire_ids[message_id] = n
            self._world_ids[n] = message_id
        return n

    def world_id(self, wire_id: int) -> str | None:
        return self._world_ids.get(wire_id)

    def auto_scan(self, qr: QrCode) -> None:
        """The owner's phone scans and confirms ``qr`` after the account's ``auto_scan_s``.

        A code asked on the shared base goes to the first iLink account that scans by
        itself and is not logged in (none: it waits for ``world.scan``), one with no other
        code on its way first: clients asking at once log in one account each.
        """
        if qr.account_id is None:
            live = ("wait", "scaned", "need_verifycode")
            taken = {
                q.account_id
                for q in (self.qr.status(c) for c in list(self.qr.codes))
                if q is not None and q is not qr and q.status in live
            }
            free = [
                b.account_id
                for b in self.bots.values()
                if b.token is None and b.sim.auto_scan_s is not None
            ]
            qr.account_id = next((a for a in free if a not in taken), None) or next(
                iter(free), None
            )
        account_id = qr.account_id
        after = self.sim(account_id).auto_scan_s if account_id is not None else None
        if account_id is None or after is None:
            return

        async def phone() -> None:
            BACKGROUND.set(True)
            await self.world.time.sleep(after)
            self.qr.status(qr.code)  # expired meanwhile?
            if qr.status == "wait":
                self.qr.scan(account_id)
                self.qr.confirm(account_id)

        task = asyncio.get_running_loop().create_task(phone())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def login(
        self, account_id: str, within_s: float, *, verify_code: bool = False
    ) -> str | None:
        """``world.login`` for an iLink account: wait for a client's QR code (asked over
        HTTP, so real time passes too), then scan and confirm it (``verify_code``: the
        phone asks for a number instead, returned)."""
        world = self.world
        if self.bot(account_id).token is not None:
            # logged in already: nothing to scan, unless a client whose bot logged out of a
            # token the server still holds shows a code for it (QrBook.showing: never one
            # another account's client may be showing, or the running client's token ends)
            shown = self.qr.showing(account_id)
            if shown is None:
                return None
            self.qr.scan(account_id, shown)
            return await self._confirm(account_id, verify_code=verify_code)
        virtual = world.time is world.clock
        deadline = world.time.now() + within_s
        while self.qr.waiting(account_id) is None:
            if virtual:
                await world.clock.settle()
            await asyncio.sleep(0.01)  # the client's request is on a real socket
            if self.qr.waiting(account_id) is not None:
                break
            if world.time.now() >= deadline:
                raise TimeoutError(f"account {account_id!r} never showed a QR code")
            if virtual:
                await world.clock.advance(0.1)
        self.qr.scan(account_id)
        return await self._confirm(account_id, verify_code=verify_code)

    async def _confirm(self, account_id: str, *, verify_code: bool) -> str | None:
        world = self.world
        qr = self.qr.confirm(account_id, verify_code=verify_code)
        if world.time is world.clock:
            await world.clock.settle()
        return qr.verify_code
