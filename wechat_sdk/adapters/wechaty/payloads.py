"""The payloads of messages, contacts and rooms: asked of the Puppet Service, then kept.

A message's payload is asked for as its event is read (:meth:`Payloads.load_ahead`) and
kept until :meth:`Payloads.message` takes it; its sender's contact is fetched alongside,
since the gateway asks for it next. What the bot sends is kept as it goes out
(:meth:`Payloads.remember_own`), so its echo costs no call. A DIRTY event drops what it
names (:meth:`Payloads.forget`). Messages and their FileBoxes are kept up to
:data:`MAX_CACHED_MESSAGES` each, oldest dropped first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from wechat_sdk.adapters.wechaty import wire
from wechat_sdk.adapters.wechaty._proto import puppet_pb2 as pb
from wechat_sdk.adapters.wechaty.filebox import FileBoxRef, parse_filebox
from wechat_sdk.logtext import shown
from wechat_sdk.puppet import Contact, FileInfo, Message, MessageKind, PuppetError, Room

__all__ = ["MAX_CACHED_MESSAGES", "Payloads"]

MAX_CACHED_MESSAGES = 4096  # message payloads (and their FileBoxes) kept, oldest dropped first


class Payloads:
    """What one client knows of messages, contacts and rooms, and the calls that ask.

    ``call(rpc, request)`` is one unary call of the client (with its deadline, a gRPC error
    as a :class:`PuppetError`); ``self_id()`` the account logged in, if any. ``log``: the
    client's logger, naming its account.
    """

    def __init__(
        self,
        call: Callable[[str, Any], Awaitable[Any]],
        *,
        self_id: Callable[[], str | None],
        max_text_chars: int,
        log: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self._call = call
        self._self_id = self_id
        self._max_text_chars = max_text_chars
        self._log = log
        self._messages: OrderedDict[str, Message] = OrderedDict()
        #: payloads asked for as their events were read, until message() takes the answer
        #: (one that succeeded drops out at once: it is in _messages)
        self._loads: OrderedDict[str, asyncio.Task[Message | PuppetError]] = OrderedDict()
        self._files: OrderedDict[str, FileBoxRef] = OrderedDict()
        self._contacts: dict[str, Contact] = {}
        #: contact payloads being fetched (shared by every caller meanwhile)
        self._contact_fetches: dict[str, asyncio.Task[Contact | PuppetError]] = {}
        self._rooms: dict[str, Room] = {}
        self._aliases: dict[tuple[str, str], str | None] = {}

    def load_ahead(self, message_id: str) -> asyncio.Task[Message | PuppetError] | None:
        """The payload call of a message event just read: a new one, the one already
        running (a repeated event), or none (cached: the bot's own message, say)."""
        if message_id in self._messages:
            return None
        load = self._loads.get(message_id)
        if load is None:
            load = asyncio.get_running_loop().create_task(self._load(message_id))
            _remember(self._loads, message_id, load)
        return load

    async def _load(self, message_id: str) -> Message | PuppetError:
        """A payload fetched ahead; its error is kept for :meth:`message` to raise."""
        try:
            message = await self._fetch_message(message_id)
        except PuppetError as exc:
            return exc
        except Exception as exc:  # bad data of any kind costs this message only
            return wire.BadWireData(f"message {shown(message_id)}: {shown(repr(exc), 200)}")
        if self._loads.get(message_id) is asyncio.current_task():
            del self._loads[message_id]  # (in _messages now)
        return message

    async def message(self, message_id: str) -> Message:
        cached = self._messages.get(message_id)
        if cached is not None:
            return cached
        load = self._loads.get(message_id)
        if load is None:
            return await self._fetch_message(message_id)
        # fetched ahead: its answer, or its error (never asked twice: a payload that does
        # not come costs its call timeout once)
        result = await asyncio.shield(load)
        if self._loads.get(message_id) is load:
            del self._loads[message_id]
        if isinstance(result, PuppetError):
            raise result
        return result

    async def _fetch_message(self, message_id: str) -> Message:
        resp = await self._call("MessagePayload", pb.MessagePayloadRequest(id=message_id))
        message = wire.message_of(message_id, resp, self._max_text_chars, logger=self._log)
        if message.kind.has_file:
            ref = await self.filebox(message_id, resp.filename)
            if ref is not None:
                message = replace(message, file=wire.file_info_of(ref))
        _remember(self._messages, message_id, message)
        talker_id = message.talker_id
        if talker_id != self._self_id() and talker_id not in self._contacts:
            # the gateway asks for the sender's name next: fetched now, alongside (in a
            # burst from 100 senders, latency fell from twice the floor's to within 15 %)
            self._contact_fetch(talker_id)
        return message

    async def filebox(self, message_id: str, filename: str = "") -> FileBoxRef | None:
        """Where a message's file is; None (logged) if its FileBox cannot be used."""
        cached = self._files.get(message_id)
        if cached is not None:
            return cached
        resp = await self._call("MessageFile", pb.MessageFileRequest(id=message_id))
        try:
            ref = parse_filebox(resp.file_box)
        except Exception as exc:  # BadFileBox, or a number it cannot hold (a size of 1e999)
            self._log.warning(
                "message %s: its file is skipped: %s", shown(message_id), shown(exc, 200)
            )
            return None
        if ref.name == "file" and filename:
            ref = replace(ref, name=filename)
        _remember(self._files, message_id, ref)
        return ref

    async def contact(self, contact_id: str) -> Contact:
        cached = self._contacts.get(contact_id)
        if cached is not None:
            return cached
        # (shielded: a caller cancelled does not cancel the fetch the others wait for)
        result = await asyncio.shield(self._contact_fetch(contact_id))
        if isinstance(result, PuppetError):
            raise result
        return result

    def _contact_fetch(self, contact_id: str) -> asyncio.Task[Contact | PuppetError]:
        """The fetch of a contact's payload: the one running, or a new one."""
        task = self._contact_fetches.get(contact_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch_contact(contact_id))
            self._contact_fetches[contact_id] = task
        return task

    async def _fetch_contact(self, contact_id: str) -> Contact | PuppetError:
        try:
            resp = await self._call("ContactPayload", pb.ContactPayloadRequest(id=contact_id))
            contact = self._contacts[contact_id] = wire.contact_of(contact_id, resp)
            return contact
        except PuppetError as exc:  # (for every caller; the next call asks again)
            return exc
        finally:
            if self._contact_fetches.get(contact_id) is asyncio.current_task():
                del self._contact_fetches[contact_id]

    async def room(self, room_id: str) -> Room:
        cached = self._rooms.get(room_id)
        if cached is not None:
            return cached
        resp = await self._call("RoomPayload", pb.RoomPayloadRequest(id=room_id))
        room = self._rooms[room_id] = wire.room_of(room_id, resp)
        return room

    async def room_alias(self, room_id: str, contact_id: str) -> str | None:
        key = (room_id, contact_id)
        if key in self._aliases:
            return self._aliases[key]
        resp = await self._call(
            "RoomMemberPayload", pb.RoomMemberPayloadRequest(id=room_id, member_id=contact_id)
        )
        alias = self._aliases[key] = resp.room_alias or None
        return alias

    def remember_own(
        self,
        message_id: str,
        conversation_id: str,
        kind: MessageKind,
        text: str = "",
        mention_ids: tuple[str, ...] = (),
        file: FileInfo | None = None,
    ) -> None:
        """Cache the payload of a message the bot just sent: the server reports it back as
        a MESSAGE event (the self-echo), and the gateway only needs to see it is its own,
        so that echo costs no ``MessagePayload`` round trip (a third of the calls per DM).
        """
        self_id = self._self_id()
        if not message_id or self_id is None or message_id in self._messages:
            return
        _remember(
            self._messages,
            message_id,
            Message(
                id=message_id,
                kind=kind,
                talker_id=self_id,
                text=text,
                listener_id=conversation_id,
                mention_ids=mention_ids,
                timestamp=time.time(),
                file=file,
            ),
        )

    def forget(self, kind: str, payload_id: str) -> None:
        """Drop what a DIRTY event of ``kind`` names (the next call asks again)."""
        if kind == "message":
            self._messages.pop(payload_id, None)
            self._files.pop(payload_id, None)
            self._loads.pop(payload_id, None)
        elif kind == "contact":
            self._contacts.pop(payload_id, None)
            self._contact_fetches.pop(payload_id, None)  # (the next call asks again)
        elif kind == "room":
            self._rooms.pop(payload_id, None)
        elif kind == "room_member":
            # the id is a room's (all its members) or a member's (in every room)
            for key in [k for k in self._aliases if payload_id in k]:
                del self._aliases[key]

    def drop_loads(self) -> None:
        """Forget the payload calls in flight (the client detached: their channel closed)."""
        self._loads.clear()


def _remember(cache: OrderedDict[str, Any], key: str, value: Any) -> None:
    """Put ``value`` in a cache of at most MAX_CACHED_MESSAGES entries (oldest dropped)."""
    cache[key] = value
    if len(cache) > MAX_CACHED_MESSAGES:
        cache.popitem(last=False)
