"""The simulated WeChat world: contacts, rooms, bot accounts and their puppets.

Everything runs on a :class:`~wechat_sdk.clock.VirtualClock`; ids and names come from a
seeded RNG and a seeded Faker, so the same seed gives the same transcript, byte for byte.
``wechat-sdk gateway run`` uses the same world on the real clock instead, with a simulated
phone that scans each QR code, and keeps each account's session in the state directory
(a "memory card", :class:`SessionCard`) so that a restarted process logs in without a scan.
For tests that drive such a process from outside, two ``puppetOptions`` connect a
simulator account to files: ``inbox`` (a directory: each JSON file dropped there is a
message to the account) and ``transcript`` (a file: every message in and out is appended
to it as a line of JSON).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from faker import Faker

from simulator.account import (
    REPLAY_AT_LOGIN,
    SLOW_SEND_S,
    SimAccount,
    _own_inbox,
    _path_option,
    _scan_after,
)
from simulator.ilink.serving import ILinkServing
from simulator.ilink.state import SLOW_POLL_S
from simulator.ilink.wire import check_kind
from simulator.messages import (
    AT_ALL,
    MENTION_SPACE,
    MessageStore,
    check_age,
    check_media,
    finite_seconds,
)
from simulator.puppet import DOWNLOAD_CHUNK, HEARTBEAT_EVERY_S, INBOX_POLL_S, SimulatedPuppet
from simulator.session import SESSION_FILE, SessionCard
from simulator.transcript import TranscriptEntry
from wechat_sdk.agent import Agent
from wechat_sdk.clock import Clock, VirtualClock
from wechat_sdk.config import Config, parse_config
from wechat_sdk.gateway import Gateway
from wechat_sdk.puppet import Contact, Message, MessageEvent, MessageKind, Puppet, Room

__all__ = [
    "AT_ALL",
    "DOWNLOAD_CHUNK",
    "FAULT_KINDS",
    "HEARTBEAT_EVERY_S",
    "INBOX_POLL_S",
    "MENTION_SPACE",
    "QR_TTL_S",
    "REPLAY_AT_LOGIN",
    "SESSION_FILE",
    "SessionCard",
    "SimAccount",
    "SimulatedPuppet",
    "SimulatedWeChat",
    "TranscriptEntry",
]

log = logging.getLogger("simulator")

T = TypeVar("T")

FaultKind = Literal[
    "disconnect",
    "heartbeat_silence",
    "send_fail",
    "send_fail_permanent",
    "rate_limit",
    "slow_send",
    "send_lost_reply",
    "duplicate_next",
    "logout",
    "slow_poll",
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

QR_TTL_S = 120.0


@dataclass
class _SimRoom:
    id: str
    topic: str
    members: list[str]
    aliases: dict[str, str]


class SimulatedWeChat(MessageStore, ILinkServing):
    """A deterministic, in-memory WeChat.

    Example:
        ```python
        world = SimulatedWeChat(seed=1)
        alice = world.add_contact(name="Alice")
        ```
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        start: float = 1_700_000_000.0,
        mention_ids: bool = True,
        mention_text: bool = True,
        qr_ttl_s: float = QR_TTL_S,
        clock: Clock | None = None,
        session_dir: str | Path | None = None,
        auto_scan_s: float | None = None,
        run_tag: str = "",
    ) -> None:
        """``clock``: the time the world lives in (default: its own virtual clock; a real
        clock for ``gateway run``, where :meth:`drive`, :meth:`advance` and
        :meth:`run_until_idle` are not used). ``session_dir``: keep each account's login
        there (see :class:`SessionCard`). ``auto_scan_s``: the simulated phone scans and
        confirms every new QR code after this many seconds (default: only when told).
        ``run_tag``: put in every message id (``msg-<tag>-...``), so that worlds of the same
        seed that feed one state directory, one process after another (``gateway run``),
        never give two messages the same id (the dedupe store would drop the later one);
        default none, the ids of a seed's first world.
        """
        self.seed = seed
        self.clock = clock if isinstance(clock, VirtualClock) else VirtualClock(start)
        #: the clock of the world's own timers and timestamps (``clock`` when virtual)
        self.time: Clock = clock if clock is not None else self.clock
        self.start_time = self.time.now()
        # the last value of ``elapsed``, and the two times it was computed from
        self._elapsed_at: object = None
        self._elapsed_since: object = None
        self._elapsed = 0.0
        self.session_dir = Path(session_dir) if session_dir is not None else None
        self.auto_scan_s = auto_scan_s
        self.rng = random.Random(seed)
        self._faker = Faker(["en_US", "zh_CN"])
        self._faker.seed_instance(seed)
        # a multi-locale Faker picks the locale with faker's own module-level RNG, which
        # no seed reaches: pick it with a seeded RNG of the world instead
        self._locale_rng = random.Random(f"{seed}:faker-locale")
        self.mention_ids = mention_ids
        self.mention_text = mention_text
        self.qr_ttl_s = qr_ttl_s
        self.contacts: dict[str, Contact] = {}
        self.rooms: dict[str, _SimRoom] = {}
        self.accounts: dict[str, SimAccount] = {}
        self.transcript: list[TranscriptEntry] = []
        #: the outbound entries of each account, in order (``sent(account=...)`` reads
        #: these: a client polling for what its bot sent never scans the whole transcript)
        self.sent_by_account: dict[str, list[TranscriptEntry]] = {}
        self.events_log: list[dict[str, Any]] = []
        self._messages: dict[str, Message] = {}
        self._files: dict[str, bytes] = {}  # the bytes of each message with a file
        self._counter = 0
        self._msg_prefix = f"msg-{run_tag}-" if run_tag else "msg-"
        self._ilink = None

    # ------------------------------------------------------------ ids and time

    def _next_id(self, prefix: str) -> str:
        self._counter += 1
        # %-formatting: the same text as f"{n:06d}{r:06x}", made faster (two ids a message)
        return "%s%06d%06x" % (prefix, self._counter, self.rng.getrandbits(24))  # noqa: UP031

    def _fake(self, provider: str) -> str:
        """A fake value from a locale chosen by the world's seed (deterministic)."""
        locale = self._locale_rng.choice(self._faker.locales)
        return str(getattr(self._faker[locale], provider)())

    @property
    def elapsed(self) -> float:
        """Seconds of virtual time since the world began."""
        now = self.time.now()
        # every message reads this and rounding is slow: the last value is kept for as long
        # as the clock gives the very same object (a virtual clock does until time moves)
        if now is not self._elapsed_at or self.start_time is not self._elapsed_since:
            self._elapsed_at, self._elapsed_since = now, self.start_time
            self._elapsed = round(now - self.start_time, 3)
        return self._elapsed

    def rng_for(self, name: str) -> random.Random:
        """A seeded RNG for one consumer (pacing jitter, pairing codes), stable per name."""
        return random.Random(f"{self.seed}:{name}")

    # ------------------------------------------------------------ the world

    def add_contact(
        self, id: str | None = None, name: str | None = None, alias: str | None = None
    ) -> Contact:
        """A WeChat user who may message the bot. Names default to seeded fake names."""
        cid = id or self._next_id("wxid_")
        contact = Contact(id=cid, name=name or self._fake("name"), alias=alias)
        self.contacts[cid] = contact
        return contact

    def add_room(
        self,
        id: str | None = None,
        topic: str | None = None,
        members: Iterable[str] = (),
        aliases: dict[str, str] | None = None,
    ) -> Room:
        """A group. Bot accounts are members of every room unless listed otherwise; what
        one sends to it reaches its other bot accounts, as in WeChat."""
        rid = id or f"{self._next_id('')}@chatroom"
        room = _SimRoom(
            rid, topic or self._fake("catch_phrase"), list(members), dict(aliases or {})
        )
        self.rooms[rid] = room
        return self._room_payload(room)

    def add_account(
        self,
        id: str = "default",
        *,
        wxid: str | None = None,
        name: str | None = None,
        transport: Literal["puppet", "ilink"] | None = None,
    ) -> SimAccount:
        """A bot account (a WeChat login the gateway runs).

        ``transport="ilink"``: a bot of WeChat's official bot API, served over HTTP by
        :meth:`ilink_server` (its ``wxid`` is its ``ilink_bot_id``, ``<12 hex>@im.bot``);
        ``"puppet"`` (the default): a simulator puppet. An ``id`` the world has already
        gives that account back when ``name`` and ``transport`` are left out or are its
        own; another name or transport is a ValueError (the account is not changed).
        """
        if transport not in (None, "puppet", "ilink"):
            raise ValueError(f'transport must be "puppet" or "ilink", not {transport!r}')
        if id in self.accounts:
            return self._known_account(id, name, transport)
        if transport == "ilink":
            return self._add_ilink_account(id, wxid, name)
        account = SimAccount(id=id, wxid=wxid or f"wxid_bot_{id}", name=name or f"Bot {id}")
        account.auto_scan_s = self.auto_scan_s
        card = self.session_card(id)
        if card is not None:
            kept = card.load()
            if kept is not None:
                account.wxid, account.session = kept, True
        self.accounts[id] = account
        self.contacts[account.wxid] = Contact(account.wxid, account.name)
        return account

    def _known_account(self, id: str, name: str | None, transport: str | None) -> SimAccount:
        """The account ``id`` the world has, when the ``name`` and ``transport`` asked for
        (if any) are its own; else a ValueError saying what it is."""
        known = self.accounts[id]
        other_name = name is not None and name != known.name
        other_transport = transport is not None and transport != known.transport
        if not other_name and not other_transport:
            return known
        what = {"puppet": "a simulator puppet", "ilink": "an iLink bot"}
        asked = [f"named {name!r}"] if other_name else []
        if other_transport:
            asked.append(f"as {what[str(transport)]}")
        raise ValueError(
            f"account {id!r} exists already, named {known.name!r}, as "
            f"{what[known.transport]}, not {' and '.join(asked)}: leave name and transport "
            "out to get it, or give the new account another id"
        )

    def session_card(self, account_id: str) -> SessionCard | None:
        """Where an account's login is kept, when the world keeps logins on disk."""
        return SessionCard(self.session_dir, account_id) if self.session_dir else None

    def set_room_alias(self, room_id: str, contact_id: str, alias: str) -> None:
        self.rooms[room_id].aliases[contact_id] = alias

    def puppet_factory(self, account: Any) -> SimulatedPuppet:
        """Make the puppet of a gateway account (``account.id``); adds the account if new."""
        account_id = str(getattr(account, "id", account))
        name = None
        settings = getattr(account, "settings", None)
        if settings is not None:
            name = getattr(settings, "name", None)
        sim = self.accounts.get(account_id) or self.add_account(account_id, name=name)
        if sim.transport == "ilink":
            raise ValueError(
                f"the world has account {account_id!r} as an iLink bot, but the gateway's "
                'config does not give it puppet: "ilink"'
            )
        options = getattr(settings, "puppetOptions", None)
        extra = getattr(options, "model_extra", None) or {}
        # (a reloaded config without one of these options: the world's default, or none)
        sim.auto_scan_s = (
            _scan_after(extra["scanAfterMs"], account)
            if "scanAfterMs" in extra
            else self.auto_scan_s
        )
        sim.inbox = _path_option(extra["inbox"], account, "inbox") if "inbox" in extra else None
        if sim.inbox is not None:
            _own_inbox(sim, self.accounts.values(), account)
        sim.transcript_file = (
            _path_option(extra["transcript"], account, "transcript")
            if "transcript" in extra
            else None
        )
        puppet = SimulatedPuppet(self, sim)
        sim.puppet = puppet
        return puppet

    def puppet(self, account_id: str = "default") -> SimulatedPuppet:
        puppet = self.accounts[account_id].puppet
        if puppet is None:
            raise KeyError(f"account {account_id!r} has no puppet yet (start a gateway first)")
        return puppet

    def gateway(
        self,
        config: Config | Mapping[str, Any] | str,
        agent: Agent,
        *,
        state_dir: str | Path,
        rng: random.Random | None = None,
        show_terminal_qr: bool = False,
        **options: Any,
    ) -> Gateway:
        """A gateway (not started yet) whose accounts live in this world, in its virtual time.

        ``config`` is a whole config: a :class:`~wechat_sdk.config.Config`, its dict, or
        JSON5 text. The gateway's puppets are the world's (an account with ``puppet:
        "ilink"`` gets the real iLink adapter, served by :meth:`ilink_server`), its clock
        the world's, and its
        random generator (pacing jitter, pairing codes) ``rng``, by default
        ``world.rng_for("gateway")``: the same run every time. ``options`` are the other
        arguments of :class:`~wechat_sdk.gateway.Gateway` (``store=...``).

        Example:
            ```python
            gateway = world.gateway(config, my_agent, state_dir=tmp_path)
            async with gateway:
                await world.login()
                await world.say("wxid_alice", "hello")
            ```
        """
        if isinstance(config, str):
            config = parse_config(config)
        elif not isinstance(config, Config):
            config = parse_config(json.dumps(config))
        state = Path(state_dir)

        def make_puppet(account: Any) -> Puppet:
            from simulator.ilink.adapter import ilink_puppet, is_ilink_account

            if is_ilink_account(account):  # the real adapter, over HTTP to this world
                return ilink_puppet(self, account, state, gateway.store)
            return self.puppet_factory(account)

        gateway = Gateway(
            config,
            agent=agent,
            puppet_factory=make_puppet,
            clock=self.clock,
            state_dir=state_dir,
            rng=rng if rng is not None else self.rng_for("gateway"),
            show_terminal_qr=show_terminal_qr,
            **options,
        )
        return gateway

    # ------------------------------------------------------------ driving time

    async def run_until_idle(self, limit: float = 86_400.0) -> None:
        """Let everything pending happen (pacing, idle flushes, retries)."""
        await self.clock.run_until_idle(limit)

    async def drive(self, awaitable: Awaitable[T]) -> T:
        """Await something that needs virtual time to pass (a send, a paced reply).

        ``await gateway.send(...)`` directly would wait forever on a virtual clock that
        nobody moves; ``await world.drive(gateway.send(...))`` moves it.
        """
        task = asyncio.ensure_future(awaitable)
        while not task.done():
            await self.clock.settle()
            if task.done():
                break
            wake = self.clock.next_wake()
            if wake is None:
                await asyncio.sleep(0)
                continue
            await self.clock.run_until(wake)
        return task.result()

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds)
        await self.clock.run_until_idle()

    # ------------------------------------------------------------ login

    async def login(
        self, account_id: str = "default", *, within_s: float = 60.0, verify_code: bool = False
    ) -> str | None:
        """Scan and confirm the QR code of an account whose puppet (or iLink client) is
        waiting.

        ``verify_code`` (iLink only): the phone asks for the number it shows instead of
        logging in; the number is returned (as the person reads it on the phone), and the
        login goes on once the client sends it (see :meth:`phone_shows`). An iLink account
        logged in already: only a code its own client may be showing is scanned (see
        :meth:`~simulator.ilink.login.QrBook.showing`), else nothing happens.
        """
        if self._is_ilink(account_id):
            return await self.ilink_state.login(account_id, within_s, verify_code=verify_code)
        if verify_code:
            raise ValueError(
                f"account {account_id!r} is not an iLink account: only iLink "
                "logins ask for a number"
            )
        await self._wait_for_qr(account_id, within_s)
        if self.puppet(account_id).self_id is not None:
            return None  # the session was kept: logged in without a scan
        self.scan(account_id)
        await self.clock.settle()
        self.confirm(account_id)
        await self.clock.run_until_idle()
        return None

    async def _wait_for_qr(self, account_id: str, within_s: float) -> None:
        deadline = self.clock.now() + within_s
        while True:
            await self.clock.settle()
            sim = self.accounts.get(account_id)
            puppet = sim.puppet if sim else None
            if puppet is not None and (puppet.qr_waiting or puppet.self_id):
                return
            if self.clock.now() >= deadline:
                raise TimeoutError(f"account {account_id!r} never showed a QR code")
            await self.clock.advance(0.1)

    def scan(self, account_id: str = "default") -> None:
        if self._is_ilink(account_id):
            self.ilink_state.qr.scan(account_id)
            return
        self.puppet(account_id).on_scanned()

    def confirm(self, account_id: str = "default", *, verify_code: bool = False) -> str | None:
        """The owner confirms the login on the phone. ``verify_code`` (iLink only): the
        phone asks for the number it shows instead; the number is returned."""
        if self._is_ilink(account_id):
            qr = self.ilink_state.qr.confirm(account_id, verify_code=verify_code)
            return qr.verify_code
        if verify_code:
            raise ValueError(
                f"account {account_id!r} is not an iLink account: only iLink "
                "logins ask for a number"
            )
        self.puppet(account_id).on_confirmed()
        return None

    def phone_shows(self, account_id: str = "default") -> str | None:
        """The number an iLink account owner's phone shows while its login asks for it
        (``confirm(..., verify_code=True)``); None when no login asks."""
        return self.ilink_state.qr.shown(account_id) if self._is_ilink(account_id) else None

    def cancel(self, account_id: str = "default") -> None:
        if self._is_ilink(account_id):
            self.ilink_state.qr.cancel(account_id)
            return
        self.puppet(account_id).on_cancelled()

    # ------------------------------------------------------------ inbound traffic

    async def say(
        self,
        sender: str,
        text: str = "",
        *,
        room: str | None = None,
        account: str | None = None,
        mention: bool | str = False,
        mention_all: bool = False,
        media: dict[str, Any] | None = None,
        kind: MessageKind | str | None = None,
        age_s: float = 0.0,
        quote: str | None = None,
        settle: bool = True,
    ) -> list[str]:
        """A contact sends a message (a DM to ``account``, or to ``room``).

        ``mention=True`` mentions the bot the way WeChat does (``@name\u2005`` text and a
        mention id, each switchable on the world); ``mention="ids"`` or ``"text"`` uses
        only one form. ``media={"kind": "image", "name": "a.png", "size": 40000}`` attaches a
        real file of that size. ``quote``: the id of a message this one quotes (a
        transcript entry's ``message_id``; an iLink account gets it cut, as iLink sends
        quotes). ``kind``: a :class:`~wechat_sdk.puppet.MessageKind` word; to an iLink
        account only the message's own (text, or its media's: iLink's items are text and
        files), else ValueError (:func:`~simulator.ilink.wire.check_kind`). Returns the
        delivered message ids (one per receiving account).
        """
        if quote is not None and quote not in self._messages:
            raise KeyError(f"no message {quote!r} to quote")
        check_age(age_s)  # (these before the sender becomes a contact)
        if media is not None:
            check_media(media)
        targets = self._targets(room, account)
        if any(sim.transport == "ilink" for sim in targets):
            check_kind(kind, None if media is None else str(media.get("kind", "file")))
        if sender not in self.contacts:
            self.add_contact(sender)
        ids = []
        for sim in targets:
            msg_id = self._make_message(
                sim,
                sender,
                text,
                room=room,
                mention=mention,
                mention_all=mention_all,
                media=media,
                kind=kind,
                age_s=age_s,
                quote=quote,
            )
            ids.append(msg_id)
            self._deliver(sim, msg_id)
        if settle:
            await self.run_until_idle()
        return ids

    def _targets(self, room: str | None, account: str | None) -> list[SimAccount]:
        if room is not None and room not in self.rooms:
            raise KeyError(f"no room {room!r} in the world: add_room() first")
        if account is not None:
            if account not in self.accounts:
                raise KeyError(f"no bot account {account!r} in the world")
            return [self.accounts[account]]
        if room is None:
            if "default" in self.accounts:
                return [self.accounts["default"]]
            if not self.accounts:
                raise KeyError("the world has no bot account: add_account() first")
            return [self.accounts[sorted(self.accounts)[0]]]
        return self._bots_in(self.rooms[room])

    def _bots_in(self, room: _SimRoom) -> list[SimAccount]:
        """The bot accounts in a room: those its members name, or every one when it names
        none."""
        bots = [a for a in self.accounts.values() if a.wxid in room.members]
        return bots or list(self.accounts.values())

    def _bot_with_id(self, wxid: str) -> SimAccount | None:
        """The bot account whose WeChat id this is, if any."""
        return next((a for a in self.accounts.values() if a.wxid == wxid), None)

    def add_past_message(
        self,
        sender: str,
        text: str,
        *,
        age_s: float,
        account: str = "default",
        room: str | None = None,
    ) -> str:
        """A message from before the bot's login: replayed at login, like real puppets do."""
        if sender not in self.contacts:
            self.add_contact(sender)
        sim = self.accounts[account]
        return self._make_message(
            sim,
            sender,
            text,
            room=room,
            mention=False,
            mention_all=False,
            media=None,
            kind=None,
            age_s=age_s,
        )

    def _deliver(self, sim: SimAccount, msg_id: str) -> None:
        if sim.transport == "ilink":
            duplicate = bool(sim.faults) and self._take_fault(sim, "duplicate_next")
            self.ilink_state.bot(sim.id).deliver(msg_id, duplicate=duplicate)
            return
        puppet = sim.puppet
        if puppet is None or not puppet.online:
            sim.offline.append(msg_id)
            return
        puppet.emit(MessageEvent(msg_id))
        if sim.faults and self._take_fault(sim, "duplicate_next"):
            self._log(sim, "fault", kind="duplicate_next", message_id=msg_id)
            puppet.emit(MessageEvent(msg_id))

    # ------------------------------------------------------------ faults

    def fault(
        self,
        kind: FaultKind | str,
        account: str = "default",
        count: int = 1,
        *,
        seconds: float | None = None,
    ) -> None:
        """Inject a fault. ``send_*``, ``rate_limit``, ``slow_send``, ``slow_poll`` and
        ``duplicate_next`` affect the next ``count`` operations; ``disconnect``,
        ``heartbeat_silence`` and ``logout`` happen now. On an iLink account (see
        :mod:`simulator.ilink`) ``logout`` expires the session (errcode -14),
        ``rate_limit`` answers ``ret -2``, ``slow_poll`` holds ``getupdates`` for
        ``seconds`` (default 40) and ``heartbeat_silence`` lets polls answer nothing for
        ``seconds`` (default 60); ``slow_poll`` does nothing to other accounts. ValueError
        for a ``count`` that is not a whole number, 1 or more, or ``seconds`` that are not
        a finite number, 0 or more."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(
                "count must be a whole number, 1 or more (how many operations the fault "
                f"affects); got {count!r}"
            )
        if seconds is not None and not finite_seconds(seconds):
            raise ValueError(f"seconds must be a finite number, 0 or more; got {seconds!r}")
        sim = self.accounts[account]
        self._log(sim, "fault", kind=kind, count=count)
        # (each fault its own seconds: one given before does not stay for the next)
        if kind == "slow_send":
            sim.slow_send_s = SLOW_SEND_S if seconds is None else seconds
        if kind == "slow_poll" and sim.transport == "ilink":
            self.ilink_state.bot(account).slow_poll_s = SLOW_POLL_S if seconds is None else seconds
        if sim.transport == "ilink" and kind in ("disconnect", "heartbeat_silence", "logout"):
            self.ilink_state.bot(account).fault_now(kind, seconds)
        elif kind == "disconnect":
            self.puppet(account).drop_link()
        elif kind == "heartbeat_silence":
            self.puppet(account).go_silent()
        elif kind == "logout":
            self.puppet(account).forced_logout()
        else:
            sim.faults[kind] = sim.faults.get(kind, 0) + count

    def _take_fault(self, sim: SimAccount, kind: str) -> bool:
        """Use up one pending fault of this kind. Callers on the per-message path check
        ``sim.faults`` first: no fault is pending almost always, and that check is cheaper
        than a call."""
        left = sim.faults.get(kind, 0)
        if left <= 0:
            return False
        sim.faults[kind] = left - 1
        return True

    # ------------------------------------------------------------ lookups

    def _room_payload(self, room: _SimRoom) -> Room:
        members = list(room.members)
        for sim in self._bots_in(room):
            if sim.wxid not in members:
                members.append(sim.wxid)
        return Room(room.id, room.topic, tuple(members))

    # ------------------------------------------------------------ reading the transcript

    def sent(
        self,
        *,
        to: str | None = None,
        room: str | None = None,
        account: str | None = None,
        since: int = 0,
    ) -> list[TranscriptEntry]:
        """Outbound messages, optionally filtered; ``since``: from the one at that index
        (of the filtered list) on, for a caller that has read the ones before."""
        if account is not None:
            entries = self.sent_by_account.get(account, [])
        else:
            entries = [e for e in self.transcript if e.direction == "out"]
        if to is None and room is None:
            return entries[since:]
        return [
            e for e in entries if (to is None or e.to == to) and (room is None or e.room == room)
        ][since:]

    def texts(
        self, *, to: str | None = None, room: str | None = None, account: str | None = None
    ) -> list[str]:
        """The text of every outbound text message, optionally filtered."""
        return [e.text for e in self.sent(to=to, room=room, account=account) if e.text is not None]

    def transcript_json(self) -> str:
        """The transcript as JSON text (stable: same seed, same bytes)."""
        return json.dumps(
            [e.to_json() for e in self.transcript], ensure_ascii=False, sort_keys=True
        )

    def _log(self, sim: SimAccount, event: str, **data: Any) -> None:
        self.events_log.append({"t": self.elapsed, "account": sim.id, "event": event, **data})
