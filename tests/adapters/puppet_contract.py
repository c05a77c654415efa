"""The Puppet port's contract: what every adapter must do, checked through the port only.

Each ``check_*`` function takes a :class:`PuppetHarness`, the small per-implementation
driver a test provides. The harness plays the world around the puppet (contacts, rooms,
the phone that scans the QR code); the checks talk to the puppet only through
:class:`~wechat_sdk.puppet.Puppet`. The simulator implements the harness
(tests/adapters), and so does the gRPC adapter on the real Node Puppet Service with
wechaty-puppet-mock (tests/e2e/mock_peer.py), so nothing here may look at simulator
internals.

    @pytest.mark.parametrize("check", CHECKS)
    async def test_contract(check, harness):
        await check(harness)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import pytest

from wechat_sdk.capabilities import Capabilities
from wechat_sdk.puppet import (
    FileTooLarge,
    HeartbeatEvent,
    LoginEvent,
    LogoutEvent,
    Message,
    MessageEvent,
    MessageKind,
    OutboundFile,
    Puppet,
    PuppetEvent,
    ReadyEvent,
    ReplyWindow,
    ScanEvent,
    ScanStatus,
)

__all__ = ["CHECKS", "Check", "EventLog", "PuppetHarness", "Sent", "started"]


@dataclass(frozen=True)
class Sent:
    """One message the bot sent, as the receiving side saw it."""

    text: str | None = None
    file_name: str | None = None
    file_size: int | None = None


class PuppetHarness(Protocol):
    """Drives the world around one implementation of the Puppet port."""

    async def create_puppet(self, account: str = "default") -> Puppet:
        """A new, not yet started puppet for a bot account."""
        ...

    async def settle(self) -> None:
        """Let pending work happen (a virtual clock runs until idle; a real peer is awaited)."""
        ...

    async def login(self, puppet: Puppet) -> None:
        """Scan and confirm the QR code the started ``puppet`` is showing."""
        ...

    async def add_contact(self, name: str) -> str:
        """A WeChat user; returns their contact id."""
        ...

    async def add_room(
        self, topic: str, member_ids: Sequence[str], aliases: dict[str, str] | None = None
    ) -> str:
        """A group with these members and the bot; ``aliases`` are group nicknames."""
        ...

    async def say_dm(self, contact_id: str, text: str) -> None:
        """The contact sends the bot a direct message."""
        ...

    async def say_group(
        self, contact_id: str, room_id: str, text: str, mention_ids: Sequence[str] = ()
    ) -> None:
        """The contact says ``text`` in the room, mentioning ``mention_ids``."""
        ...

    async def send_file_to_bot(self, contact_id: str, name: str, size: int) -> bytes:
        """The contact sends the bot a file of ``size`` bytes; returns its exact bytes."""
        ...

    async def sent(self, conversation_id: str) -> list[Sent]:
        """What the bot sent to a contact or room, oldest first."""
        ...

    async def force_logout(self, puppet: Puppet) -> None:
        """The account is logged out from the phone."""
        ...

    async def close(self) -> None:
        """Release everything the harness made."""
        ...


# ---------------------------------------------------------------- reading events

E = TypeVar("E")


@dataclass
class EventLog:
    """Events of one puppet, collected by a background task iterating ``events()``."""

    puppet: Puppet
    events: list[PuppetEvent] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self.puppet.events():
            self.events.append(event)

    @property
    def ended(self) -> bool:
        return self.task is not None and self.task.done()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def without_heartbeats(self) -> list[PuppetEvent]:
        return [e for e in self.events if not isinstance(e, HeartbeatEvent)]

    def message_ids(self) -> list[str]:
        return [e.message_id for e in self.events if isinstance(e, MessageEvent)]

    async def messages(self) -> list[Message]:
        """The payload of every message event so far, in order."""
        return [await self.puppet.message(mid) for mid in self.message_ids()]

    async def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def eventually(
    harness: PuppetHarness, condition: Callable[[], bool], what: str, tries: int = 50
) -> None:
    """Settle until ``condition`` holds (once, for a virtual clock; a few times for a peer)."""
    for _ in range(tries):
        await harness.settle()
        if condition():
            return
    raise AssertionError(f"never happened: {what}")


async def find_message(
    harness: PuppetHarness, log: EventLog, match: Callable[[Message], bool], what: str
) -> Message:
    """The first message event whose payload matches."""
    found: list[Message] = []

    async def scan() -> None:
        found.clear()
        found.extend(m for m in await log.messages() if match(m))

    for _ in range(50):
        await harness.settle()
        await scan()
        if found:
            return found[0]
    raise AssertionError(f"no message event for {what}; got {await log.messages()}")


class started:
    """``async with started(harness) as (puppet, log)``: a started puppet and its events."""

    def __init__(
        self, harness: PuppetHarness, *, login: bool = True, account: str = "default"
    ) -> None:
        self.harness = harness
        self.login = login
        self.account = account
        self.puppet: Puppet | None = None
        self.log: EventLog | None = None

    async def __aenter__(self) -> tuple[Puppet, EventLog]:
        puppet = await self.harness.create_puppet(self.account)
        await puppet.start()
        log = EventLog(puppet)
        log.start()
        self.puppet, self.log = puppet, log
        if self.login:
            await eventually(self.harness, lambda: _showing_qr(log), "a QR code to scan")
            await self.harness.login(puppet)
            await eventually(self.harness, lambda: bool(log.of(ReadyEvent)), "ready")
        return puppet, log

    async def __aexit__(self, *exc: object) -> None:
        assert self.puppet is not None and self.log is not None
        await self.puppet.stop()
        await self.harness.settle()
        await self.log.cancel()


def _showing_qr(log: EventLog) -> bool:
    return any(
        isinstance(e, ScanEvent) and e.status == ScanStatus.WAITING and e.qrcode for e in log.events
    )


def _needs_groups(puppet: Puppet) -> None:
    """Group checks run where the transport has groups (iLink is direct chats only)."""
    if "group" not in puppet.capabilities.chat_types:
        pytest.skip("the transport has no groups (capabilities.chatTypes)")


async def _window_opened(
    harness: PuppetHarness, puppet: Puppet, log: EventLog, contact_id: str
) -> None:
    """On a transport with reply windows (iLink) the bot only answers: the contact writes
    first. Elsewhere nothing is done."""
    if puppet.reply_window(contact_id) is None:
        return
    await harness.say_dm(contact_id, "hello")
    await find_message(harness, log, lambda m: m.talker_id == contact_id, "the opening DM")


async def _collect_download(puppet: Puppet, message_id: str, max_bytes: int) -> list[bytes]:
    chunks: list[bytes] = []
    async for chunk in puppet.download(message_id, max_bytes):
        chunks.append(chunk)
    return chunks


# ---------------------------------------------------------------- login


async def check_start_shows_a_qr_code_before_login(harness: PuppetHarness) -> None:
    async with started(harness, login=False) as (puppet, log):
        await eventually(harness, lambda: _showing_qr(log), "a WAITING scan event")
        assert puppet.self_id is None
        assert not log.of(LoginEvent)
        waiting = [e for e in log.of(ScanEvent) if e.status == ScanStatus.WAITING]
        assert waiting[0].qrcode.strip()


async def check_scan_and_confirm_log_in_then_ready(harness: PuppetHarness) -> None:
    async with started(harness) as (puppet, log):
        order = log.without_heartbeats()
        scans = [e.status for e in order if isinstance(e, ScanEvent)]
        assert scans[0] == ScanStatus.WAITING
        assert ScanStatus.SCANNED in scans
        assert scans.index(ScanStatus.SCANNED) > 0
        kinds = [type(e) for e in order]
        login_at = kinds.index(LoginEvent)
        ready_at = kinds.index(ReadyEvent)
        last_scan_at = max(i for i, k in enumerate(kinds) if k is ScanEvent)
        assert last_scan_at < login_at < ready_at
        # after SCANNED comes CONFIRMED or directly the login
        after_scanned = scans[scans.index(ScanStatus.SCANNED) + 1 :]
        assert set(after_scanned) <= {ScanStatus.CONFIRMED}
        login = order[login_at]
        assert isinstance(login, LoginEvent)
        assert login.contact_id
        assert puppet.self_id == login.contact_id


async def check_self_id_is_none_before_login(harness: PuppetHarness) -> None:
    puppet = await harness.create_puppet()
    assert puppet.self_id is None
    await puppet.start()
    await harness.settle()
    assert puppet.self_id is None
    await puppet.stop()
    await harness.settle()


# ---------------------------------------------------------------- inbound


async def check_inbound_dm_is_a_text_message_to_the_bot(harness: PuppetHarness) -> None:
    async with started(harness) as (puppet, log):
        alice = await harness.add_contact("Alice")
        await harness.say_dm(alice, "hello bot")
        msg = await find_message(harness, log, lambda m: m.talker_id == alice, "alice's DM")
        assert msg.kind == MessageKind.TEXT
        assert msg.text == "hello bot"
        assert msg.listener_id == puppet.self_id
        assert msg.room_id is None
        assert not msg.is_group
        assert msg.file is None


async def check_group_message_carries_room_and_mention_ids(harness: PuppetHarness) -> None:
    async with started(harness) as (puppet, log):
        _needs_groups(puppet)
        assert puppet.self_id is not None
        bob = await harness.add_contact("Bob")
        carol = await harness.add_contact("Carol")
        room = await harness.add_room("Weekend hike", [bob, carol])
        await harness.say_group(bob, room, "who is coming?")
        await harness.say_group(carol, room, "bot, the weather?", mention_ids=[puppet.self_id])
        plain = await find_message(harness, log, lambda m: m.talker_id == bob, "bob's line")
        mentioned = await find_message(
            harness, log, lambda m: m.talker_id == carol, "carol's mention"
        )
        for msg in (plain, mentioned):
            assert msg.room_id == room
            assert msg.is_group
            assert msg.kind == MessageKind.TEXT
        assert plain.text == "who is coming?"
        assert puppet.self_id not in plain.mention_ids
        assert mentioned.text.endswith("bot, the weather?")
        assert puppet.self_id in mentioned.mention_ids


async def check_contact_room_and_room_alias_payloads(harness: PuppetHarness) -> None:
    async with started(harness) as (puppet, _log):
        _needs_groups(puppet)
        dave = await harness.add_contact("Dave")
        erin = await harness.add_contact("Erin")
        room = await harness.add_room("Book club", [dave, erin], aliases={dave: "Dave the Reader"})
        contact = await puppet.contact(dave)
        assert contact.id == dave
        assert contact.name == "Dave"
        payload = await puppet.room(room)
        assert payload.id == room
        assert payload.topic == "Book club"
        assert {dave, erin} <= set(payload.member_ids)
        assert puppet.self_id in payload.member_ids
        assert await puppet.room_alias(room, dave) == "Dave the Reader"
        assert await puppet.room_alias(room, erin) in (None, "")


# ---------------------------------------------------------------- outbound


async def check_send_text_reaches_the_contact(harness: PuppetHarness) -> None:
    async with started(harness) as (puppet, log):
        frank = await harness.add_contact("Frank")
        await _window_opened(harness, puppet, log, frank)
        returned = await puppet.send_text(frank, "hi Frank")
        assert returned is None or isinstance(returned, str)
        await harness.settle()
        assert [s.text for s in await harness.sent(frank)] == ["hi Frank"]


async def check_send_text_to_a_room_reaches_the_room(harness: PuppetHarness) -> None:
    async with started(harness) as (puppet, _log):
        _needs_groups(puppet)
        gina = await harness.add_contact("Gina")
        room = await harness.add_room("Team", [gina])
        await puppet.send_text(room, "hello team", mention_ids=(gina,))
        await harness.settle()
        assert any(
            s.text is not None and s.text.endswith("hello team") for s in await harness.sent(room)
        )


async def check_own_messages_come_back_as_self_echo(harness: PuppetHarness) -> None:
    async with started(harness) as (puppet, log):
        hank = await harness.add_contact("Hank")
        await _window_opened(harness, puppet, log, hank)
        sent_id = await puppet.send_text(hank, "echo me")
        echo = await find_message(
            harness,
            log,
            lambda m: m.talker_id == puppet.self_id and m.text == "echo me",
            "the self-echo",
        )
        assert echo.kind == MessageKind.TEXT
        if sent_id:
            assert echo.id == sent_id


async def check_send_file_delivers_the_right_size(harness: PuppetHarness) -> None:
    async with started(harness) as (puppet, log):
        iris = await harness.add_contact("Iris")
        await _window_opened(harness, puppet, log, iris)
        data = bytes(range(256)) * 1000  # 256,000 bytes
        await puppet.send_file(
            iris, OutboundFile(name="report.pdf", data=data, mime="application/pdf")
        )
        await harness.settle()
        files = [s for s in await harness.sent(iris) if s.file_size is not None]
        assert len(files) == 1
        assert files[0].file_size == len(data)
        assert files[0].file_name == "report.pdf"


async def check_capabilities_typing_and_reply_window(harness: PuppetHarness) -> None:
    async with started(harness) as (puppet, log):
        caps = puppet.capabilities
        assert isinstance(caps, Capabilities)
        assert "direct" in caps.chat_types
        lena = await harness.add_contact("Lena")
        await harness.say_dm(lena, "are you there?")
        await find_message(harness, log, lambda m: m.talker_id == lena, "lena's DM")
        # typing is a courtesy: shown and cancelled without raising, supported or not
        await puppet.set_typing(lena, True)
        await puppet.set_typing(lena, False)
        before = puppet.reply_window(lena)
        await puppet.send_text(lena, "yes")
        after = puppet.reply_window(lena)
        if before is None:  # no reply window on this transport
            assert after is None
            return
        assert isinstance(before, ReplyWindow) and isinstance(after, ReplyWindow)
        assert after.remaining == before.remaining - 1  # a bot message uses one
        assert after.closes_at == before.closes_at  # and does not renew the window


# ---------------------------------------------------------------- files in


async def check_download_streams_the_exact_bytes(harness: PuppetHarness) -> None:
    async with started(harness) as (puppet, log):
        jack = await harness.add_contact("Jack")
        size = 200_000  # more than one chunk on every adapter
        expected = await harness.send_file_to_bot(jack, "notes.pdf", size)
        assert len(expected) == size
        msg = await find_message(harness, log, lambda m: m.talker_id == jack, "jack's file")
        assert msg.kind.has_file
        assert msg.file is not None
        assert msg.file.size == size
        chunks = await _collect_download(puppet, msg.id, max_bytes=size)
        assert all(chunks)
        assert b"".join(chunks) == expected


async def check_download_over_the_cap_raises_file_too_large(harness: PuppetHarness) -> None:
    async with started(harness) as (puppet, log):
        kate = await harness.add_contact("Kate")
        size = 150_000
        await harness.send_file_to_bot(kate, "big.pdf", size)
        msg = await find_message(harness, log, lambda m: m.talker_id == kate, "kate's file")
        cap = 50_000
        got: list[bytes] = []
        try:
            async for chunk in puppet.download(msg.id, cap):
                got.append(chunk)
        except FileTooLarge as err:
            assert err.cap == cap
        else:
            raise AssertionError("download past max_bytes did not raise FileTooLarge")
        assert sum(len(c) for c in got) <= cap


# ---------------------------------------------------------------- logout and stop


async def check_logout_emits_logout_and_clears_self_id(harness: PuppetHarness) -> None:
    async with started(harness) as (puppet, log):
        me = puppet.self_id
        await puppet.logout()
        await eventually(harness, lambda: bool(log.of(LogoutEvent)), "a logout event")
        logout = log.of(LogoutEvent)[0]
        assert isinstance(logout, LogoutEvent)
        assert logout.contact_id == me
        assert puppet.self_id is None


async def check_forced_logout_emits_logout_and_clears_self_id(harness: PuppetHarness) -> None:
    async with started(harness) as (puppet, log):
        me = puppet.self_id
        await harness.force_logout(puppet)
        await eventually(harness, lambda: bool(log.of(LogoutEvent)), "a logout event")
        logout = log.of(LogoutEvent)[0]
        assert isinstance(logout, LogoutEvent)
        assert logout.contact_id == me
        assert puppet.self_id is None


async def check_stop_ends_the_event_stream(harness: PuppetHarness) -> None:
    puppet = await harness.create_puppet()
    await puppet.start()
    log = EventLog(puppet)
    log.start()
    await eventually(harness, lambda: _showing_qr(log), "a QR code")
    await harness.login(puppet)
    await eventually(harness, lambda: bool(log.of(ReadyEvent)), "ready")
    await puppet.stop()
    await eventually(harness, lambda: log.ended, "the end of events()")
    assert log.task is not None and log.task.exception() is None


Check = Callable[[PuppetHarness], Awaitable[None]]

#: Every contract check, in a stable order (parametrize tests over it).
CHECKS: tuple[Check, ...] = (
    check_start_shows_a_qr_code_before_login,
    check_scan_and_confirm_log_in_then_ready,
    check_self_id_is_none_before_login,
    check_inbound_dm_is_a_text_message_to_the_bot,
    check_group_message_carries_room_and_mention_ids,
    check_contact_room_and_room_alias_payloads,
    check_send_text_reaches_the_contact,
    check_send_text_to_a_room_reaches_the_room,
    check_own_messages_come_back_as_self_echo,
    check_send_file_delivers_the_right_size,
    check_capabilities_typing_and_reply_window,
    check_download_streams_the_exact_bytes,
    check_download_over_the_cap_raises_file_too_large,
    check_logout_emits_logout_and_clears_self_id,
    check_forced_logout_emits_logout_and_clears_self_id,
    check_stop_ends_the_event_stream,
)
