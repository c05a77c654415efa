"""The Puppet port: how the channel talks to WeChat.

Adapters (the simulator, the Puppet Service gRPC client) implement :class:`Puppet` and
speak only in the normalised payload types below. Nothing here knows gRPC or JSON.
"""

from __future__ import annotations

import enum
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from wechat_sdk.capabilities import Capabilities

__all__ = [
    "Contact",
    "DirtyEvent",
    "ErrorEvent",
    "FileInfo",
    "FileTooLarge",
    "HeartbeatEvent",
    "HoldsEventsBack",
    "LoginEvent",
    "LogoutEvent",
    "MediaWord",
    "Message",
    "MessageEvent",
    "MessageKind",
    "OutboundFile",
    "Puppet",
    "PuppetError",
    "PuppetEvent",
    "ReadyEvent",
    "ReplyWindow",
    "Room",
    "ScanEvent",
    "ScanStatus",
    "SendError",
    "SendOutcomeUnknown",
    "TakesVerifyCode",
    "VerifyCodeEvent",
    "VerifyCodeNotAsked",
    "VerifyCodeOutcome",
    "WindowClosed",
    "verify_number",
    "voice_length_problem",
]


class MessageKind(enum.StrEnum):
    """Every message kind Wechaty knows (wechaty-puppet's ``MessageType``)."""

    UNKNOWN = "unknown"
    ATTACHMENT = "attachment"
    AUDIO = "audio"
    CONTACT = "contact"
    CHAT_HISTORY = "chat_history"
    EMOTICON = "emoticon"
    IMAGE = "image"
    TEXT = "text"
    LOCATION = "location"
    MINI_PROGRAM = "mini_program"
    GROUP_NOTE = "group_note"
    TRANSFER = "transfer"
    RED_ENVELOPE = "red_envelope"
    RECALLED = "recalled"
    URL = "url"
    VIDEO = "video"
    POST = "post"

    @property
    def has_file(self) -> bool:
        """Kinds whose content is a downloadable file."""
        return self in _FILE_KINDS

    @property
    def media_word(self) -> MediaWord:
        """The word for this kind's file where a file is described as data: the simulator's
        ``media={"kind": ...}``, a scenario's media and its transcript.

        ``image``, ``video``, ``audio`` (voice), ``emoticon`` (a sticker), and ``file`` for an
        attachment and every other kind. :meth:`from_media_word` is the way back.

        >>> MessageKind.EMOTICON.media_word
        'emoticon'
        """
        return _MEDIA_WORDS.get(self, "file")

    @classmethod
    def from_media_word(cls, word: str) -> MessageKind:
        """The kind of a file described by ``word`` (a :meth:`media_word`, or an
        :class:`OutboundFile`'s ``kind``); any other word is an attachment.

        >>> MessageKind.from_media_word("audio")
        <MessageKind.AUDIO: 'audio'>
        """
        return _KINDS_OF_WORDS.get(word, MessageKind.ATTACHMENT)

    @property
    def media_item_kind(self) -> str:
        """What an agent reads in ``MediaItem.kind`` for a file of this kind: the
        :meth:`media_word`, except that a sticker is an ``image`` (an agent knows the four
        kinds it can also send, ``image``, ``video``, ``audio`` and ``file``)."""
        return "image" if self is MessageKind.EMOTICON else self.media_word


#: Words for files described as data: see MessageKind.media_word.
MediaWord = Literal["image", "video", "audio", "emoticon", "file"]

_FILE_KINDS = frozenset(
    {
        MessageKind.ATTACHMENT,
        MessageKind.AUDIO,
        MessageKind.IMAGE,
        MessageKind.VIDEO,
        MessageKind.EMOTICON,
    }
)
# the one table of kinds and their words (every file kind but ATTACHMENT, whose word is "file")
_MEDIA_WORDS: dict[MessageKind, MediaWord] = {
    MessageKind.IMAGE: "image",
    MessageKind.VIDEO: "video",
    MessageKind.AUDIO: "audio",
    MessageKind.EMOTICON: "emoticon",
}
_KINDS_OF_WORDS: dict[str, MessageKind] = {word: kind for kind, word in _MEDIA_WORDS.items()}


class ScanStatus(enum.IntEnum):
    """Wechaty's scan status codes, as logged in ``[WeChat] QR Code status: <n>``."""

    UNKNOWN = 0
    CANCEL = 1
    WAITING = 2
    SCANNED = 3
    CONFIRMED = 4
    TIMEOUT = 5

    @property
    def meaning(self) -> str:
        """The status in words, for people reading ``QR Code status: <n>``."""
        return _SCAN_MEANINGS[self]


_SCAN_MEANINGS = {
    ScanStatus.UNKNOWN: "a new QR code",
    ScanStatus.CANCEL: "the scan was cancelled on the phone",
    ScanStatus.WAITING: "waiting for a scan",
    ScanStatus.SCANNED: "scanned: confirm the login on the phone",
    ScanStatus.CONFIRMED: "confirmed: logging in",
    ScanStatus.TIMEOUT: "the QR code expired: a new one follows",
}


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What is known about a message's file before downloading it."""

    name: str
    size: int
    mime: str | None = None
    duration_s: float | None = None  # voice and video


@dataclass(frozen=True, slots=True)
class Message:
    """A normalised message payload."""

    id: str
    kind: MessageKind
    talker_id: str
    text: str = ""
    room_id: str | None = None
    listener_id: str | None = None
    mention_ids: tuple[str, ...] = ()
    timestamp: float = 0.0
    file: FileInfo | None = None
    #: the message this one quotes (replies to), where the transport says so: its id, and
    #: its text as the adapter knows it from its own history (iLink's quotes arrive cut)
    quoted_id: str | None = None
    quoted_text: str | None = None

    @property
    def is_group(self) -> bool:
        return self.room_id is not None


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    name: str
    alias: str | None = None


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    topic: str
    member_ids: tuple[str, ...] = ()


def voice_length_problem(
    kind: str, duration_s: float | None, *, key: str = "duration_s"
) -> str | None:
    """Why a file cannot go as a voice message (None: it can): WeChat refuses a voice
    (kind ``audio``) without its length in seconds, more than 0. ``key`` names the length
    as the caller's input does (the HTTP API's and a webhook agent's ``durationS``).

    >>> voice_length_problem("audio", None, key="durationS")
    'a voice message (kind audio) needs durationS, its length in seconds (more than 0)'
    >>> voice_length_problem("audio", 3.5) is None and voice_length_problem("file", None) is None
    True
    """
    if kind == "audio" and not (duration_s is not None and duration_s > 0):
        return f"a voice message (kind audio) needs {key}, its length in seconds (more than 0)"
    return None


@dataclass(frozen=True, slots=True)
class OutboundFile:
    """A file to send, given by exactly one of ``path``, ``data`` or ``url``.

    ``kind`` is ``image``, ``video``, ``audio`` (voice: needs ``duration_s``) or ``file``.
    A ``url`` (http or https) is downloaded by the outbound pipeline, capped at
    ``mediaMaxMb``, and then sent as bytes; `read()` does not fetch it.
    """

    name: str
    kind: str = "file"
    path: Path | None = None
    data: bytes | None = None
    mime: str | None = None
    duration_s: float | None = None
    url: str | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is not None:
            return self.path.read_bytes()
        if self.url is not None:
            raise ValueError(f"OutboundFile {self.name!r} is a URL: download it before reading")
        raise ValueError("OutboundFile has neither path nor data")

    @property
    def size(self) -> int:
        """Bytes of ``data`` or of the file at ``path``; 0 for a URL not yet downloaded."""
        if self.data is not None:
            return len(self.data)
        if self.path is not None:
            return self.path.stat().st_size
        return 0


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class ScanEvent:
    status: ScanStatus
    qrcode: str = ""
    data: str = ""


@dataclass(frozen=True, slots=True)
class VerifyCodeEvent:
    """The QR login waits for the number the phone shows (iLink's ``need_verifycode``):
    a person gives it through :meth:`TakesVerifyCode.submit_verify_code`.

    ``state``: ``asked`` (the phone shows a number), ``wrong`` (the number given is not
    it: asked again) or ``blocked`` (too many wrong ones: a new QR code follows).
    """

    state: Literal["asked", "wrong", "blocked"] = "asked"


@dataclass(frozen=True, slots=True)
class LoginEvent:
    contact_id: str


@dataclass(frozen=True, slots=True)
class LogoutEvent:
    contact_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReadyEvent:
    pass


@dataclass(frozen=True, slots=True)
class HeartbeatEvent:
    data: str = ""


@dataclass(frozen=True, slots=True)
class MessageEvent:
    message_id: str


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    message: str
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class DirtyEvent:
    payload_type: str
    payload_id: str


PuppetEvent = (
    ScanEvent
    | VerifyCodeEvent
    | LoginEvent
    | LogoutEvent
    | ReadyEvent
    | HeartbeatEvent
    | MessageEvent
    | ErrorEvent
    | DirtyEvent
)


# ---------------------------------------------------------------- errors


class PuppetError(Exception):
    """Base of errors raised by puppets."""


@dataclass
class SendError(PuppetError):
    """A send definitely did not go out.

    ``transient`` errors (network, rate limit) may be retried; permanent ones may not.
    ``retry_after`` is a hint in seconds (rate limits).
    """

    message: str
    transient: bool = True
    retry_after: float | None = None
    code: str = "send_failed"

    def __str__(self) -> str:
        return self.message


@dataclass
class WindowClosed(SendError):
    """The conversation's reply window is closed: nothing was sent.

    A transport with reply windows (iLink) lets the bot write only after the user wrote:
    at most a number of messages per user message, and nothing once a time has passed
    since it. The message says which limit was hit, e.g. ``reply window closed: the user
    has not written in 24 h`` or ``reply window closed: 10 replies already sent since the
    user's last message``. Not transient: the window opens again only when the user writes.
    """

    transient: bool = False
    code: str = "window_closed"


class SendOutcomeUnknown(PuppetError):
    """The send may or may not have been accepted (e.g. the reply was lost).

    Delivery must not blindly retry: it first looks for the message's self-echo.
    """


class VerifyCodeNotAsked(PuppetError):
    """A number was given while no login asks for one (none is waiting, or another number
    given just before is being checked)."""


class FileTooLarge(PuppetError):
    """A download passed the size cap; nothing past the cap was read."""

    def __init__(self, size: int, cap: int) -> None:
        super().__init__(f"file of {size} bytes is over the cap of {cap} bytes")
        self.size = size
        self.cap = cap


# ---------------------------------------------------------------- reply windows


@dataclass(frozen=True, slots=True)
class ReplyWindow:
    """What the bot may still send in a conversation before the user writes again.

    Given by :meth:`Puppet.reply_window` on transports that have reply windows (iLink);
    ``None`` there means the transport has none (Wechaty, the simulator's puppet).

    >>> ReplyWindow(remaining=10, closes_at=86_400.0).remaining
    10
    """

    #: bot messages still allowed before the user writes again
    remaining: int
    #: clock time (the gateway clock's ``now()``) after which nothing may be sent
    closes_at: float
    #: the longest text message the transport takes: a reply packed into fewer messages
    #: to fit the window has messages up to this long
    max_chars: int = 4000


# ---------------------------------------------------------------- the port


@runtime_checkable
class Puppet(Protocol):
    """One WeChat account's connection."""

    @property
    def self_id(self) -> str | None:
        """The logged-in account's contact id, or None before login."""
        ...

    async def start(self) -> None:
        """Connect and begin login; events follow on :meth:`events`."""
        ...

    async def stop(self) -> None:
        """Disconnect; :meth:`events` ends."""
        ...

    def events(self) -> AsyncIterator[PuppetEvent]:
        """The event stream. Ends when the puppet stops or the link drops."""
        ...

    async def message(self, message_id: str) -> Message: ...

    async def contact(self, contact_id: str) -> Contact: ...

    async def room(self, room_id: str) -> Room: ...

    async def room_alias(self, room_id: str, contact_id: str) -> str | None:
        """The member's alias (group nickname) in that room, if any."""
        ...

    async def send_text(
        self, conversation_id: str, text: str, mention_ids: tuple[str, ...] = ()
    ) -> str | None:
        """Send text; returns the new message id when the puppet tells it."""
        ...

    async def send_file(self, conversation_id: str, file: OutboundFile) -> str | None: ...

    def download(self, message_id: str, max_bytes: int) -> AsyncIterator[bytes]:
        """Stream a message's file in chunks; raises :class:`FileTooLarge` past ``max_bytes``."""
        ...

    async def logout(self) -> None: ...

    @property
    def capabilities(self) -> Capabilities:
        """What this puppet's transport can do (the matrix ``channels capabilities`` shows)."""
        ...

    async def set_typing(self, conversation_id: str, typing: bool) -> None:
        """Show (``True``) or cancel (``False``) "typing..." to the peer; a no-op where the
        transport has no typing (``capabilities.typing`` is false). Never raises for a
        typing indicator that could not be shown: it is a courtesy, not a message."""
        ...

    def reply_window(self, conversation_id: str) -> ReplyWindow | None:
        """The conversation's reply window now, or ``None`` when the transport has none.

        ``remaining`` 0 or ``closes_at`` passed: a send raises :class:`WindowClosed`.
        """
        ...


#: what became of a number given to a login (:meth:`TakesVerifyCode.submit_verify_code`):
#: ``accepted`` (the login goes on), ``wrong`` (asked again), ``blocked`` (too many wrong
#: ones: a new QR code follows), ``expired`` (the QR code expired first: a new one follows),
#: ``pending`` (the login has not answered yet)
VerifyCodeOutcome = Literal["accepted", "wrong", "blocked", "expired", "pending"]


_NUMBER = re.compile(r"[0-9]{1,16}")


def verify_number(code: str) -> str:
    """``code`` as the number the phone shows (spaces typed in it dropped); a ValueError
    saying what to give for anything else.

    >>> verify_number(" 12 34 ")
    '1234'
    """
    number = "".join(str(code).split())
    if not _NUMBER.fullmatch(number):
        raise ValueError("give the number the phone shows: digits only, e.g. 123456")
    return number


@runtime_checkable
class HoldsEventsBack(Protocol):
    """A puppet that may hand an event over after later ones (the Wechaty client: a
    message waits for its payload, and the events behind it go on after a while).

    Not part of :class:`Puppet`: delivery asks it, with ``isinstance``, before it takes an
    event stream that went on without a send's echo as proof the send did not go out.
    """

    def events_held_back(self) -> int:
        """Events read from the stream, not handed over yet, that later ones overtook."""
        ...


@runtime_checkable
class TakesVerifyCode(Protocol):
    """A puppet whose QR login may ask for the number the phone shows (the iLink adapter).

    Not part of :class:`Puppet`: a puppet whose login never asks (Wechaty's) does not have
    it, and ``isinstance(puppet, TakesVerifyCode)`` tells which.
    """

    async def submit_verify_code(self, code: str) -> VerifyCodeOutcome:
        """Give the login the number the phone shows; what became of it, once the server
        said (``pending`` if it has not yet, after a while).

        Raises :class:`VerifyCodeNotAsked` when no login asks for a number now, and
        :class:`ValueError` for a ``code`` that is not a number.
        """
        ...
