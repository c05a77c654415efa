"""The Puppet port over the simulated world, for one bot account: its event stream, its
login (QR codes, the simulated phone, the kept session), heartbeats, the inbox it reads,
and its sends, with the world's injected faults applied."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.account import SimAccount, _make_inbox, _take_inbox
from wechat_sdk.capabilities import CAPABILITIES, Capabilities
from wechat_sdk.clock import BACKGROUND
from wechat_sdk.puppet import (
    Contact,
    FileTooLarge,
    HeartbeatEvent,
    LoginEvent,
    LogoutEvent,
    Message,
    MessageEvent,
    OutboundFile,
    PuppetError,
    PuppetEvent,
    ReadyEvent,
    ReplyWindow,
    Room,
    ScanEvent,
    ScanStatus,
    SendError,
    SendOutcomeUnknown,
)

if TYPE_CHECKING:
    from simulator.world import SimulatedWeChat

log = logging.getLogger("simulator")

HEARTBEAT_EVERY_S = 15.0
DOWNLOAD_CHUNK = 64 * 1024
#: seconds between two looks into an account's inbox directory (``puppetOptions.inbox``)
INBOX_POLL_S = 0.1


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
        #: stopped and not started again: its account reads no inbox (another account of
        #: a reloaded config may take the folder)
        self.stopped = False

    # -------------------------------------------------------- the port

    @property
    def self_id(self) -> str | None:
        return self._self_id

    async def start(self) -> None:
        self.starts += 1
        self.stopped = False
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
        self.stopped = True
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

    # ------------------------------------------------------------ transport

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    async def set_typing(self, conversation_id: str, typing: bool) -> None:
        """the simulated account has no typing indicator: nothing to do."""

    def reply_window(self, conversation_id: str) -> ReplyWindow | None:
        return None  # the simulated account has no reply window

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
        as they appear, every INBOX_POLL_S seconds. A missing folder is made (and its
        parents); one that cannot be made is a warning, and is looked into again."""
        BACKGROUND.set(True)
        _make_inbox(inbox, self.account.id)
        while True:
            for sender, text, room in _take_inbox(inbox):
                if room is not None and room not in self.world.rooms:
                    # (a `gateway run` world knows no room: the message makes its group)
                    self.world.add_room(room, members=[sender])
                await self.world.say(sender, text, room=room, account=self.account.id, settle=False)
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
        if self._queue is not None:  # a running puppet offers a new QR code, as Wechaty's do
            self._new_qr()

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
