"""What a Wechaty Puppet Service sends, as the Puppet port's types: pure conversions, no I/O.

An event is an ``EventResponse {type, payload}`` whose payload is a JSON string; a payload
call answers with a protobuf message. Anything unusable (a number such as ``1e999``
included) raises :class:`BadWireData`, which says what is wrong; the client logs it and
skips that one event or message.

>>> event_of(25, '{"contactId": "wxid_bot"}')
LoginEvent(contact_id='wxid_bot')
>>> event_of(2, '{"messageId": "m1"}')
MessageEvent(message_id='m1')
"""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass
from typing import Any

from wechat_sdk.adapters.wechaty._proto import puppet_pb2 as pb
from wechat_sdk.adapters.wechaty.filebox import FileBoxRef
from wechat_sdk.logtext import shown
from wechat_sdk.puppet import (
    Contact,
    DirtyEvent,
    ErrorEvent,
    FileInfo,
    HeartbeatEvent,
    LoginEvent,
    LogoutEvent,
    Message,
    MessageEvent,
    MessageKind,
    PuppetError,
    PuppetEvent,
    ReadyEvent,
    Room,
    ScanEvent,
    ScanStatus,
)

__all__ = [
    "MESSAGE_KINDS",
    "BadWireData",
    "EventType",
    "RoomChanged",
    "contact_of",
    "event_of",
    "file_info_of",
    "message_kind",
    "message_of",
    "room_of",
]

log = logging.getLogger("wechat_sdk.adapters.wechaty")

#: wechaty-puppet's TypeScript ``MessageType`` numbers, which servers put in the ``type``
#: field (not the proto enum of wechaty-grpc: read that way, a text message is a video).
MESSAGE_KINDS: dict[int, MessageKind] = {
    0: MessageKind.UNKNOWN,
    1: MessageKind.ATTACHMENT,
    2: MessageKind.AUDIO,
    3: MessageKind.CONTACT,
    4: MessageKind.CHAT_HISTORY,
    5: MessageKind.EMOTICON,
    6: MessageKind.IMAGE,
    7: MessageKind.TEXT,
    8: MessageKind.LOCATION,
    9: MessageKind.MINI_PROGRAM,
    10: MessageKind.GROUP_NOTE,
    11: MessageKind.TRANSFER,
    12: MessageKind.RED_ENVELOPE,
    13: MessageKind.RECALLED,
    14: MessageKind.URL,
    15: MessageKind.VIDEO,
    16: MessageKind.POST,
}


class EventType(enum.IntEnum):
    """``EventResponse.type``."""

    HEARTBEAT = 1
    MESSAGE = 2
    DONG = 3
    POST = 4
    ERROR = 16
    FRIENDSHIP = 17
    ROOM_INVITE = 18
    ROOM_JOIN = 19
    ROOM_LEAVE = 20
    ROOM_TOPIC = 21
    SCAN = 22
    READY = 23
    RESET = 24
    LOGIN = 25
    LOGOUT = 26
    DIRTY = 27


# events the port has nothing for
_IGNORED = {EventType.POST, EventType.FRIENDSHIP, EventType.ROOM_INVITE, EventType.RESET}
_ROOM_CHANGES = {EventType.ROOM_JOIN, EventType.ROOM_LEAVE, EventType.ROOM_TOPIC}
# DIRTY payload types
_DIRTY_NAMES = {1: "message", 2: "contact", 3: "room", 4: "room_member", 5: "friendship"}


class BadWireData(PuppetError):
    """Wire data that cannot be used: the event or message it came in is skipped."""


@dataclass(frozen=True, slots=True)
class RoomChanged:
    """Someone joined or left a room, or its topic changed: its cached payloads are stale.
    The client's own business; the port has no event for it."""

    room_id: str


def message_kind(number: int) -> MessageKind:
    """The message kind of a wechaty-puppet ``MessageType`` number (unknown: UNKNOWN)."""
    return MESSAGE_KINDS.get(number, MessageKind.UNKNOWN)


def event_of(event_type: int, payload: str) -> PuppetEvent | RoomChanged | None:
    """The event of one ``EventResponse``; None for a type the port has no event for.

    A LOGOUT without a ``contactId`` has an empty one (the client knows whose it is).
    """
    try:
        data = json.loads(payload) if payload else {}
    except (json.JSONDecodeError, RecursionError) as exc:
        raise BadWireData(f"a malformed JSON payload ({exc})") from None
    if not isinstance(data, dict):
        raise BadWireData("its payload is not a JSON object")
    if event_type in (EventType.HEARTBEAT, EventType.DONG):
        return HeartbeatEvent(data=str(data.get("data", "")))
    if event_type == EventType.MESSAGE:
        return MessageEvent(message_id=_text(data, "messageId"))
    if event_type == EventType.SCAN:
        try:
            status = ScanStatus(_integer(data, "status"))
        except ValueError:
            status = ScanStatus.UNKNOWN
        return ScanEvent(
            status=status,
            qrcode=str(data.get("qrcode") or ""),
            data=str(data.get("data") or ""),
        )
    if event_type == EventType.LOGIN:
        return LoginEvent(contact_id=_text(data, "contactId"))
    if event_type == EventType.LOGOUT:
        return LogoutEvent(
            contact_id=str(data.get("contactId") or ""), reason=str(data.get("data") or "")
        )
    if event_type == EventType.READY:
        return ReadyEvent()
    if event_type == EventType.ERROR:
        message = data.get("data") or data.get("gerror") or "error"
        return ErrorEvent(message=str(message)[:500])
    if event_type == EventType.DIRTY:
        kind = _DIRTY_NAMES.get(_integer(data, "payloadType"), "unknown")
        return DirtyEvent(payload_type=kind, payload_id=_text(data, "payloadId"))
    if event_type in _ROOM_CHANGES:
        room_id = data.get("roomId")
        return RoomChanged(room_id) if isinstance(room_id, str) and room_id else None
    if event_type in _IGNORED:
        return None
    raise BadWireData(f"unknown type {event_type}")


def message_of(
    message_id: str,
    payload: pb.MessagePayloadResponse,
    max_text_chars: int,
    *,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = log,
) -> Message:
    """The :class:`Message` of a ``MessagePayload`` answer, without its file's details
    (a file kind's FileBox is another call). ``logger``: the client's, naming its account."""
    if len(payload.text) > max_text_chars:
        raise BadWireData(
            f"message {shown(message_id)} has {len(payload.text)} characters of text, "
            f"over the limit of {max_text_chars}: skipped"
        )
    if payload.type not in MESSAGE_KINDS:
        logger.warning(
            "message %s has an unknown type %d: read as unknown", shown(message_id), payload.type
        )
    if not payload.talker_id:
        raise BadWireData(f"message {shown(message_id)} has no talker: skipped")
    timestamp = 0.0
    if payload.HasField("receive_time"):
        timestamp = payload.receive_time.seconds + payload.receive_time.nanos / 1e9
    elif payload.timestamp_deprecated:
        ts = float(payload.timestamp_deprecated)
        timestamp = ts / 1000.0 if ts > 1e12 else ts  # (milliseconds, from older servers)
    return Message(
        id=payload.id or message_id,
        kind=message_kind(payload.type),
        talker_id=payload.talker_id,
        text=payload.text,
        room_id=payload.room_id or None,
        listener_id=payload.listener_id or None,
        mention_ids=tuple(payload.mention_ids),
        timestamp=timestamp,
    )


def file_info_of(ref: FileBoxRef) -> FileInfo:
    return FileInfo(name=ref.name, size=ref.size or 0, mime=ref.mime, duration_s=ref.duration_s)


def contact_of(contact_id: str, payload: pb.ContactPayloadResponse) -> Contact:
    return Contact(id=payload.id or contact_id, name=payload.name, alias=payload.alias or None)


def room_of(room_id: str, payload: pb.RoomPayloadResponse) -> Room:
    return Room(id=payload.id or room_id, topic=payload.topic, member_ids=tuple(payload.member_ids))


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise BadWireData(f"missing {key}")
    return value


def _integer(data: dict[str, Any], key: str) -> int:
    """An integer field, written as a number or a string of digits (absent: 0)."""
    value = data.get(key, 0)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():  # (not inf or nan: 1e999 is inf)
        return int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    raise BadWireData(f"{json.dumps(key)} is not an integer: {shown(repr(value))}")
