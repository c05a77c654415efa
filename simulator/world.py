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
import contextlib
import json
import logging
import os
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from faker import Faker

from simulator.media import KIND_DEFAULTS, make_media_bytes
from wechat_sdk.agent import Agent
from wechat_sdk.clock import BACKGROUND, Clock, VirtualClock
from wechat_sdk.config import Config, ConfigError, parse_config
from wechat_sdk.gateway import Gateway
from wechat_sdk.puppet import (
    Contact,
    FileInfo,
    FileTooLarge,
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
    Room,
    ScanEvent,
    ScanStatus,
    SendError,
    SendOutcomeUnknown,
)

__all__ = [
    "FAULT_KINDS",
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
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

MENTION_SPACE = "\u2005"
AT_ALL = "@所有人"
QR_TTL_S = 120.0
HEARTBEAT_EVERY_S = 15.0
REPLAY_AT_LOGIN = 5
DOWNLOAD_CHUNK = 64 * 1024
SESSION_FILE = "simulator-session.json"
#: seconds between two looks into an account's inbox directory (``puppetOptions.inbox``)
INBOX_POLL_S = 0.1


@dataclass(frozen=True, init=False)
class TranscriptEntry:
    """One message in or out, as the scenario runner prints it."""

    t: float
    direction: Literal["in", "out"]
    account: str
    sender: str
    to: str | None
    room: str | None
    text: str | None
    media: dict[str, Any] | None = None
    message_id: str = ""

    def __init__(
        self,
        t: float,
        direction: Literal["in", "out"],
        account: str,
        sender: str,
        to: str | None,
        room: str | None,
        text: str | None,
        media: dict[str, Any] | None = None,
        message_id: str = "",
    ) -> None:
        # the __init__ dataclass writes for a frozen class sets each field with its own
        # object.__setattr__ call, which made an entry cost as much as the rest of
        # recording a message; this one fills the instance dict at once (the same fields,
        # in the same order; a test checks it matches the fields above)
        self.__dict__.update(
            t=t,
            direction=direction,
            account=account,
            sender=sender,
            to=to,
            room=room,
            text=text,
            media=media,
            message_id=message_id,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "direction": self.direction,
            "account": self.account,
            "from": self.sender,
            "to": self.to,
            "room": self.room,
            "text": self.text,
            "media": self.media,
        }


@dataclass
class SimAccount:
    """A bot account in the world."""

    id: str
    wxid: str
    name: str
    session: bool = False  # logged in before and not logged out: a restart needs no scan
    puppet: SimulatedPuppet | None = None
    history: deque[str] = field(default_factory=lambda: deque(maxlen=REPLAY_AT_LOGIN))
    offline: list[str] = field(default_factory=list)  # message ids waiting for a connection
    faults: dict[str, int] = field(default_factory=dict)
    slow_send_s: float = 5.0
    auto_scan_s: float | None = None  # the simulated phone scans each new QR after this
    inbox: Path | None = None  # puppetOptions.inbox: JSON files here are messages to it
    transcript_file: Path | None = None  # puppetOptions.transcript: its messages, as JSON lines


class SessionCard:
    """One account's login kept on disk: ``<session_dir>/<account>/simulator-session.json``.

    Like a Wechaty memory card: written at login, removed at logout, read when the account
    appears in a new world (a new process). It holds the account id, the bot's wxid and
    the login time; the simulator has no secrets to keep. Owner-only (0600 in 0700).
    """

    def __init__(self, session_dir: Path, account_id: str) -> None:
        self.path = session_dir / account_id / SESSION_FILE
        self.account_id = account_id

    def load(self) -> str | None:
        """The wxid of the kept session, or None (no card, or one that cannot be read)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable session %s (%s): a new scan is needed", self.path, exc)
            return None
        if not isinstance(data, dict) or data.get("account") != self.account_id:
            log.warning("ignoring session %s: it is not for account %r", self.path, self.account_id)
            return None
        wxid = data.get("wxid")
        return wxid if isinstance(wxid, str) and wxid else None

    def save(self, wxid: str, at: float) -> None:
        for folder in (self.path.parent.parent, self.path.parent):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "account": self.account_id, "wxid": wxid, "loggedInAt": at}, f)
        os.replace(tmp, self.path)

    def forget(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@dataclass
class _SimRoom:
    id: str
    topic: str
    members: list[str]
    aliases: dict[str, str]


class SimulatedWeChat:
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
        self.events_log: list[dict[str, Any]] = []
        self._messages: dict[str, Message] = {}
        self._files: dict[str, bytes] = {}  # the bytes of each message with a file
        self._counter = 0
        self._msg_prefix = f"msg-{run_tag}-" if run_tag else "msg-"

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
        """A group. Bot accounts are members of every room unless listed otherwise."""
        rid = id or f"{self._next_id('')}@chatroom"
        room = _SimRoom(
            rid, topic or self._fake("catch_phrase"), list(members), dict(aliases or {})
        )
        self.rooms[rid] = room
        return self._room_payload(room)

    def add_account(
        self, id: str = "default", *, wxid: str | None = None, name: str | None = None
    ) -> SimAccount:
        """A bot account (a WeChat login the gateway runs)."""
        if id in self.accounts:
            return self.accounts[id]
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
        options = getattr(settings, "puppetOptions", None)
        extra = getattr(options, "model_extra", None) or {}
        if "scanAfterMs" in extra:
            sim.auto_scan_s = _scan_after(extra["scanAfterMs"], account)
        if "inbox" in extra:
            sim.inbox = _path_option(extra["inbox"], account, "inbox")
        if "transcript" in extra:
            sim.transcript_file = _path_option(extra["transcript"], account, "transcript")
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
        JSON5 text. The gateway's puppets are the world's, its clock the world's, and its
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
        return Gateway(
            config,
            agent=agent,
            puppet_factory=self.puppet_factory,
            clock=self.clock,
            state_dir=state_dir,
            rng=rng if rng is not None else self.rng_for("gateway"),
            show_terminal_qr=show_terminal_qr,
            **options,
        )

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

    async def login(self, account_id: str = "default", *, within_s: float = 60.0) -> None:
        """Scan and confirm the QR code of an account whose puppet is waiting."""
        await self._wait_for_qr(account_id, within_s)
        if self.puppet(account_id).self_id is not None:
            return  # the session was kept: logged in without a scan
        self.scan(account_id)
        await self.clock.settle()
        self.confirm(account_id)
        await self.clock.run_until_idle()

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
        self.puppet(account_id).on_scanned()

    def confirm(self, account_id: str = "default") -> None:
        self.puppet(account_id).on_confirmed()

    def cancel(self, account_id: str = "default") -> None:
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
        settle: bool = True,
    ) -> list[str]:
        """A contact sends a message (a DM to ``account``, or to ``room``).

        ``mention=True`` mentions the bot the way WeChat does (``@name\u2005`` text and a
        mention id, each switchable on the world); ``mention="ids"`` or ``"text"`` uses
        only one form. ``media={"kind": "image", "name": "a.png", "size": 40000}`` attaches a
        real file of that size. Returns the delivered message ids (one per receiving
        account).
        """
        if sender not in self.contacts:
            self.add_contact(sender)
        targets = self._targets(room, account)
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
            )
            ids.append(msg_id)
            self._deliver(sim, msg_id)
        if settle:
            await self.run_until_idle()
        return ids

    def _targets(self, room: str | None, account: str | None) -> list[SimAccount]:
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
        r = self.rooms[room]
        bots = [a for a in self.accounts.values() if a.wxid in r.members]
        return bots or list(self.accounts.values())

    def _make_message(
        self,
        sim: SimAccount,
        sender: str,
        text: str,
        *,
        room: str | None,
        mention: bool | str,
        mention_all: bool,
        media: dict[str, Any] | None,
        kind: MessageKind | str | None,
        age_s: float,
    ) -> str:
        mention_ids: tuple[str, ...] = ()
        body = text
        if room is not None and mention:
            use_ids = mention in (True, "ids", "both") and (self.mention_ids or mention == "ids")
            use_text = mention in (True, "text", "both") and (
                self.mention_text or mention == "text"
            )
            if use_ids:
                mention_ids = (sim.wxid,)
            if use_text:
                shown = self.rooms[room].aliases.get(sim.wxid) or sim.name
                body = f"@{shown}{MENTION_SPACE}{body}"
        if room is not None and mention_all:
            body = f"{AT_ALL}{MENTION_SPACE}{body}"
        file_info = None
        data = None
        media_json = None
        msg_kind = MessageKind(kind) if kind is not None else MessageKind.TEXT
        if media is not None:
            mkind = str(media.get("kind", "file"))
            default_name, mime = KIND_DEFAULTS.get(mkind, KIND_DEFAULTS["file"])
            name = str(media.get("name") or default_name)
            size = int(media.get("size", 1024))
            duration = media.get("duration")
            if mkind == "audio" and duration is None:
                duration = 3.0
            data = make_media_bytes(mkind, name, size, self.rng)
            file_info = FileInfo(
                name=name,
                size=size,
                mime=media.get("mime") or mime,
                duration_s=float(duration) if duration is not None else None,
            )
            msg_kind = MessageKind.from_media_word(mkind)
            media_json = _media_json(file_info, msg_kind)
        msg_id = self._next_id(self._msg_prefix)
        to = None if room else sim.wxid
        # positional arguments, in field order: a class called with keywords packs them
        # into a dict first, which costs more than the rest of the call (twice a message)
        message = Message(
            msg_id,
            msg_kind,
            sender,  # talker_id
            body,
            room,
            to,  # listener_id
            mention_ids,
            self.time.now() - age_s,
            file_info,
        )
        self._messages[msg_id] = message
        if data is not None:
            self._files[msg_id] = data
        sim.history.append(msg_id)
        self._record(
            sim,
            TranscriptEntry(
                self.elapsed, "in", sim.id, sender, to, room, body or None, media_json, msg_id
            ),
        )
        return msg_id

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
        """Inject a fault. ``send_*``, ``rate_limit``, ``slow_send`` and ``duplicate_next``
        affect the next ``count`` operations; ``disconnect``, ``heartbeat_silence`` and
        ``logout`` happen now."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        sim = self.accounts[account]
        self._log(sim, "fault", kind=kind, count=count)
        if kind == "slow_send" and seconds is not None:
            sim.slow_send_s = seconds
        if kind == "disconnect":
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
        for sim in self.accounts.values():
            if sim.wxid not in members:
                members.append(sim.wxid)
        return Room(room.id, room.topic, tuple(members))

    def message_payload(self, message_id: str) -> Message:
        try:
            return self._messages[message_id]
        except KeyError:
            raise PuppetError(f"no message {message_id!r}") from None

    def message_data(self, message_id: str) -> bytes | None:
        if message_id not in self._messages:
            raise KeyError(message_id)
        return self._files.get(message_id)

    # ------------------------------------------------------------ outbound record

    def record_out(
        self,
        sim: SimAccount,
        conversation_id: str,
        text: str | None,
        media: dict[str, Any] | None,
        mention_ids: tuple[str, ...] = (),
        data: bytes | None = None,
    ) -> str:
        room = conversation_id if conversation_id in self.rooms else None
        to = None if room else conversation_id
        msg_id = self._next_id(self._msg_prefix)
        kind = MessageKind.TEXT
        finfo = None
        if media is not None:
            kind = MessageKind.from_media_word(str(media.get("kind")))
            finfo = FileInfo(
                str(media["name"]), int(media["size"]), media.get("mime"), media.get("duration")
            )
        # positional arguments, in field order (see _make_message)
        message = Message(
            msg_id,
            kind,
            sim.wxid,  # talker_id
            text or "",
            room,
            to,  # listener_id
            mention_ids,
            self.time.now(),
            finfo,
        )
        self._messages[msg_id] = message
        if data is not None:
            self._files[msg_id] = data
        self._record(
            sim,
            TranscriptEntry(self.elapsed, "out", sim.id, sim.wxid, to, room, text, media, msg_id),
        )
        return msg_id

    def _record(self, sim: SimAccount, entry: TranscriptEntry) -> None:
        self.transcript.append(entry)
        path = sim.transcript_file
        if path is not None:  # puppetOptions.transcript: for a test outside the process
            try:
                with path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(entry.to_json(), ensure_ascii=False) + "\n")
            except OSError as exc:
                log.warning("could not append to the transcript %s: %s", path, exc)

    # ------------------------------------------------------------ reading the transcript

    def sent(
        self, *, to: str | None = None, room: str | None = None, account: str | None = None
    ) -> list[TranscriptEntry]:
        """Outbound messages, optionally filtered."""
        return [
            e
            for e in self.transcript
            if e.direction == "out"
            and (to is None or e.to == to)
            and (room is None or e.room == room)
            and (account is None or e.account == account)
        ]

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


def _scan_after(value: object, account: Any) -> float | None:
    """``puppetOptions.scanAfterMs`` of a simulator account: milliseconds, or false."""
    if value is False or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        key_path = getattr(account, "key_path", None)
        where = key_path("puppetOptions.scanAfterMs") if key_path else "puppetOptions.scanAfterMs"
        raise ConfigError.single(
            where,
            f"must be a number of milliseconds (0 or more), or false to never scan; got {value!r}",
        )
    return float(value) / 1000.0


def _take_inbox(inbox: Path) -> list[tuple[str, str, str | None]]:
    """The messages waiting in an inbox directory, each file read and deleted: every
    ``*.json`` file (in name order) is one message, ``{"from": "wxid_alice", "text": "hi"}``
    with an optional ``"room"``. Write a file elsewhere and move it in, so that it is never
    read half written; a file that is not such a message is logged and deleted."""
    messages = []
    for path in sorted(inbox.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            sender, text, room = data["from"], data.get("text", ""), data.get("room")
            if not isinstance(sender, str) or not isinstance(text, str):
                raise ValueError('"from" and "text" must be strings')
            if room is not None and not isinstance(room, str):
                raise ValueError('"room" must be a string')
            messages.append((sender, text, room))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring inbox file %s: %s", path, exc)
        with contextlib.suppress(OSError):
            path.unlink()
    return messages


def _path_option(value: object, account: Any, name: str) -> Path:
    """``puppetOptions.inbox`` or ``.transcript`` of a simulator account: a path."""
    if not isinstance(value, str) or not value:
        key_path = getattr(account, "key_path", None)
        where = key_path(f"puppetOptions.{name}") if key_path else f"puppetOptions.{name}"
        raise ConfigError.single(where, f"must be a path (a string); got {value!r}")
    return Path(value).expanduser()


def _media_json(info: FileInfo, kind: MessageKind) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": kind.media_word, "name": info.name, "size": info.size}
    if info.duration_s is not None:
        out["duration"] = info.duration_s
    return out


class SimulatedPuppet:
    """The Puppet port over the simulated world, for one bot account."""

    def __init__(self, world: SimulatedWeChat, account: SimAccount) -> None:
        self.world = world
        self.account = account
        # the events of the current connection; None in it ends the stream
        self._queue: asyncio.Queue[PuppetEvent | None] | None = None
        self._self_id: str | None = None
        self.online = False
        self.qr_waiting = False
        self._silent = False
        self._qr_task: asyncio.Task[None] | None = None
        self._hb_task: asyncio.Task[None] | None = None
        self._scan_task: asyncio.Task[None] | None = None
        self._inbox_task: asyncio.Task[None] | None = None
        self._qr_generation = 0
        self.starts = 0

    # -------------------------------------------------------- the port

    @property
    def self_id(self) -> str | None:
        return self._self_id

    async def start(self) -> None:
        self.starts += 1
        self._queue = asyncio.Queue()
        self._silent = False
        self.online = False
        self.world._log(self.account, "start")
        # a dropped link leaves the previous connection's timers running: end them, or a
        # restarted puppet would beat (and time QR codes out) twice
        for task in (self._qr_task, self._hb_task, self._scan_task, self._inbox_task):
            if task is not None:
                task.cancel()
        self._qr_task = self._scan_task = self._inbox_task = None
        self._hb_task = asyncio.get_running_loop().create_task(self._heartbeats())
        if self.account.inbox is not None:
            self._inbox_task = asyncio.get_running_loop().create_task(
                self._read_inbox(self.account.inbox)
            )
        if self.account.session:
            self._logged_in()
        else:
            self._new_qr()

    async def stop(self) -> None:
        self.world._log(self.account, "stop")
        self.online = False
        self.qr_waiting = False
        self._self_id = None
        for task in (self._qr_task, self._hb_task, self._scan_task, self._inbox_task):
            if task is not None:
                task.cancel()
        self._qr_task = self._hb_task = self._scan_task = self._inbox_task = None
        if self._queue is not None:
            self._queue.put_nowait(None)
            self._queue = None

    async def events(self) -> AsyncIterator[PuppetEvent]:
        queue = self._queue
        if queue is None:
            return
        while True:
            item = await queue.get()
            if item is None:  # the end of this connection's stream
                return
            yield item

    async def message(self, message_id: str) -> Message:
        return self.world.message_payload(message_id)

    async def contact(self, contact_id: str) -> Contact:
        try:
            return self.world.contacts[contact_id]
        except KeyError:
            raise PuppetError(f"no contact {contact_id!r}") from None

    async def room(self, room_id: str) -> Room:
        try:
            return self.world._room_payload(self.world.rooms[room_id])
        except KeyError:
            raise PuppetError(f"no room {room_id!r}") from None

    async def room_alias(self, room_id: str, contact_id: str) -> str | None:
        room = self.world.rooms.get(room_id)
        return room.aliases.get(contact_id) if room else None

    async def send_text(
        self, conversation_id: str, text: str, mention_ids: tuple[str, ...] = ()
    ) -> str | None:
        if self._self_id is None or self.account.faults:  # else there is nothing to check
            await self._before_send()
        msg_id = self.world.record_out(self.account, conversation_id, text, None, mention_ids)
        return self._after_send(msg_id)

    async def send_file(self, conversation_id: str, file: OutboundFile) -> str | None:
        await self._before_send()
        if file.kind == "audio" and not file.duration_s:
            raise SendError("voice needs its duration", transient=False, code="bad_request")
        data = file.read()
        media: dict[str, Any] = {"kind": file.kind, "name": file.name, "size": len(data)}
        if file.mime:
            media["mime"] = file.mime
        if file.duration_s:
            media["duration"] = file.duration_s
        msg_id = self.world.record_out(self.account, conversation_id, None, media, data=data)
        return self._after_send(msg_id)

    async def download(self, message_id: str, max_bytes: int) -> AsyncIterator[bytes]:
        data = self.world.message_data(message_id)
        if data is None:
            raise PuppetError(f"message {message_id!r} has no file")
        if len(data) > max_bytes:
            raise FileTooLarge(len(data), max_bytes)
        for i in range(0, len(data), DOWNLOAD_CHUNK):
            yield data[i : i + DOWNLOAD_CHUNK]

    async def logout(self) -> None:
        self.forced_logout(reason="logged out by the bot")

    # -------------------------------------------------------- world-side controls

    def emit(self, event: PuppetEvent) -> None:
        if self._queue is not None and not self._silent:
            self._queue.put_nowait(event)

    def _new_qr(self) -> None:
        self._qr_generation += 1
        code = (
            f"https://login.weixin.qq.com/l/{self.account.id}-{self._qr_generation}-"
            f"{self.world.rng.getrandbits(32):08x}"
        )
        self.qr_waiting = True
        self.world._log(self.account, "scan", status=int(ScanStatus.WAITING))
        self.emit(ScanEvent(ScanStatus.WAITING, code))
        if self._qr_task is not None:
            self._qr_task.cancel()
        self._qr_task = asyncio.get_running_loop().create_task(self._qr_timeout(code))
        if self.account.auto_scan_s is not None:
            if self._scan_task is not None:
                self._scan_task.cancel()
            self._scan_task = asyncio.get_running_loop().create_task(
                self._phone_scans(self._qr_generation, self.account.auto_scan_s)
            )

    async def _phone_scans(self, generation: int, after_s: float) -> None:
        """The simulated phone scans and confirms the QR code it was shown."""
        BACKGROUND.set(True)
        await self.world.time.sleep(after_s)
        if self.qr_waiting and self._qr_generation == generation:
            self._scan_task = None
            self.on_scanned()
            self.on_confirmed()

    async def _qr_timeout(self, code: str) -> None:
        BACKGROUND.set(True)
        await self.world.time.sleep(self.world.qr_ttl_s)
        if self.qr_waiting:
            self.world._log(self.account, "scan", status=int(ScanStatus.TIMEOUT))
            self.emit(ScanEvent(ScanStatus.TIMEOUT, code))
            self._qr_task = None
            self._new_qr()

    def on_scanned(self) -> None:
        if not self.qr_waiting:
            raise RuntimeError(f"account {self.account.id!r} is not showing a QR code")
        self.world._log(self.account, "scan", status=int(ScanStatus.SCANNED))
        self.emit(ScanEvent(ScanStatus.SCANNED))

    def on_confirmed(self) -> None:
        if not self.qr_waiting:
            raise RuntimeError(f"account {self.account.id!r} is not showing a QR code")
        self.emit(ScanEvent(ScanStatus.CONFIRMED))
        self._logged_in()

    def on_cancelled(self) -> None:
        self.emit(ScanEvent(ScanStatus.CANCEL))
        self._new_qr()

    def _logged_in(self) -> None:
        self.qr_waiting = False
        if self._qr_task is not None:
            self._qr_task.cancel()
            self._qr_task = None
        self.account.session = True
        self._self_id = self.account.wxid
        self.online = True
        card = self.world.session_card(self.account.id)
        if card is not None:
            try:
                card.save(self.account.wxid, self.world.time.now())
            except OSError as exc:
                log.warning("could not keep the session in %s: %s", card.path, exc)
        self.world._log(self.account, "login")
        self.emit(LoginEvent(self.account.wxid))
        # like real puppets: recent history is replayed at login, then what waited offline
        for msg_id in list(self.account.history):
            if msg_id not in self.account.offline:
                self.emit(MessageEvent(msg_id))
        self.emit(ReadyEvent())
        waiting, self.account.offline = self.account.offline, []
        for msg_id in waiting:
            self.emit(MessageEvent(msg_id))

    async def _heartbeats(self) -> None:
        BACKGROUND.set(True)
        n = 0
        while True:
            await self.world.time.sleep(HEARTBEAT_EVERY_S)
            n += 1
            self.emit(HeartbeatEvent(f"heartbeat-{n}"))

    async def _read_inbox(self, inbox: Path) -> None:
        """Messages from outside the process (``puppetOptions.inbox``), said to this account
        as they appear, every INBOX_POLL_S seconds."""
        BACKGROUND.set(True)
        while True:
            for sender, text, room in _take_inbox(inbox):
                try:
                    await self.world.say(
                        sender, text, room=room, account=self.account.id, settle=False
                    )
                except KeyError as exc:  # a room the world does not know
                    log.warning("ignoring an inbox message: %s", exc)
            await self.world.time.sleep(INBOX_POLL_S)

    def drop_link(self) -> None:
        """The connection breaks: the event stream ends; messages wait on the server."""
        self.online = False
        if self._queue is not None:
            self._queue.put_nowait(None)
            self._queue = None

    def go_silent(self) -> None:
        """The link stays open but nothing arrives (a dead link the watchdog must notice)."""
        self._silent = True
        self.online = False

    def forced_logout(self, reason: str = "logged out on the phone") -> None:
        self.account.session = False
        card = self.world.session_card(self.account.id)
        if card is not None:
            card.forget()
        self.online = False
        contact = self._self_id or self.account.wxid
        self._self_id = None
        self.world._log(self.account, "logout", reason=reason)
        self.emit(LogoutEvent(contact, reason))

    async def _before_send(self) -> None:
        sim = self.account
        if self._self_id is None:
            raise SendError("not logged in", transient=True, code="not_logged_in")
        if not sim.faults:
            return
        if self.world._take_fault(sim, "slow_send"):
            await self.world.time.sleep(sim.slow_send_s)
        if self.world._take_fault(sim, "send_fail_permanent"):
            raise SendError(
                "the contact cannot receive messages", transient=False, code="send_failed_permanent"
            )
        if self.world._take_fault(sim, "rate_limit"):
            raise SendError(
                "sending too frequently", transient=True, retry_after=10.0, code="rate_limited"
            )
        if self.world._take_fault(sim, "send_fail"):
            raise SendError("network error while sending", transient=True)

    def _after_send(self, msg_id: str) -> str | None:
        # self-echo: real puppets report the bot's own messages as message events
        self.emit(MessageEvent(msg_id))
        if self.account.faults and self.world._take_fault(self.account, "send_lost_reply"):
            raise SendOutcomeUnknown("the send was accepted but its reply was lost")
        return msg_id
