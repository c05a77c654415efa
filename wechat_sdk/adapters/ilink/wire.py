"""iLink's JSON, read at the edge: pydantic models of what ``getupdates`` delivers, and the
conversion of one ``WeixinMessage`` into the port's :class:`~wechat_sdk.puppet.Message`
and the reference to its file on the CDN.

Unknown fields are ignored; a field of the wrong type, or a number out of its sane range (a
time past the year 9999, a duration past a uint32, any number past a 64-bit one), or a
user's message that does not name its sender (``from_user_id``), makes that one message
unreadable (skipped, with a log line), never the batch. Ids that are
uint64 numbers on the wire are read as strings (Python's JSON keeps them exact).

>>> msg = parse_message({"message_id": 7, "from_user_id": "u@im.wechat", "message_type": 1,
...     "item_list": [{"type": 1, "text_item": {"text": "hi"}}], "context_token": "c"})
>>> read_message(msg, bot_id="b@im.bot").message.text
'hi'
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from wechat_sdk.config.loader import error_words
from wechat_sdk.puppet import FileInfo, Message, MessageKind

__all__ = [
    "ITEM_FILE",
    "ITEM_IMAGE",
    "ITEM_TEXT",
    "ITEM_VIDEO",
    "ITEM_VOICE",
    "MAX_TEXT_CHARS",
    "MediaRef",
    "ReadMessage",
    "WeixinMessage",
    "parse_message",
    "read_message",
]

ITEM_TEXT, ITEM_IMAGE, ITEM_VOICE, ITEM_FILE, ITEM_VIDEO = 1, 2, 3, 4, 5
#: message_type of a user's message (2 is a bot's)
USER_MESSAGE = 1
#: the longest text handed on from one message; a longer one is cut, with a note (a
#: 10 MB text would otherwise ride through history, the agent's context and the logs)
MAX_TEXT_CHARS = 100_000

#: the last millisecond of the year 9999: a later ``create_time_ms`` is no time
MAX_TIME_MS = 253_402_300_799_999
#: the largest file length read from a file item's ``len`` (a uint64 has 20 digits)
_MAX_LEN_DIGITS = 20

#: the file extension of a voice item's audio, by its ``encode_type``
_VOICE_EXT = {1: "pcm", 2: "adpcm", 4: "speex", 5: "amr", 6: "silk", 7: "mp3", 8: "ogg"}
_VOICE_MIME = {5: "audio/amr", 6: "audio/silk", 7: "audio/mpeg", 8: "audio/ogg"}


def _id(value: Any) -> Any:
    """uint64 ids come as JSON numbers or strings: both are strings here."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    return value


WireId = Annotated[str | None, BeforeValidator(_id)]
# iLink's numbers are 32- or 64-bit integers on its side: a larger one is no number iLink
# sent, and arithmetic on it (a time or a duration as a float) would overflow, so it is
# refused here, at the edge, like a field of the wrong type
WireInt = Annotated[int, Field(ge=-(2**63), le=2**64 - 1)]
TimeMs = Annotated[int, Field(ge=0, le=MAX_TIME_MS)]
Duration = Annotated[int, Field(ge=0, le=2**32 - 1)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CdnMedia(_Wire):
    encrypt_query_param: str | None = None
    aes_key: str | None = None
    encrypt_type: WireInt | None = None
    full_url: str | None = None


class TextItem(_Wire):
    text: str | None = None


class ImageItem(_Wire):
    media: CdnMedia | None = None
    aeskey: str | None = None
    mid_size: WireInt | None = None
    hd_size: WireInt | None = None


class VoiceItem(_Wire):
    media: CdnMedia | None = None
    encode_type: WireInt | None = None
    playtime: Duration | None = None
    text: str | None = None


class FileItem(_Wire):
    media: CdnMedia | None = None
    file_name: str | None = None
    len: Annotated[str | None, BeforeValidator(_id)] = None


class VideoItem(_Wire):
    media: CdnMedia | None = None
    video_size: WireInt | None = None
    play_length: Duration | None = None


class RefMessage(_Wire):
    message_item: MessageItem | None = None
    title: str | None = None
    svr_id: WireId = None


class MessageItem(_Wire):
    type: WireInt | None = None
    msg_id: WireId = None
    ref_msg: RefMessage | None = None
    text_item: TextItem | None = None
    image_item: ImageItem | None = None
    voice_item: VoiceItem | None = None
    file_item: FileItem | None = None
    video_item: VideoItem | None = None


class WeixinMessage(_Wire):
    seq: WireInt | None = None
    message_id: WireId = None
    from_user_id: str | None = None
    to_user_id: str | None = None
    client_id: str | None = None
    create_time_ms: TimeMs | None = None
    group_id: WireId = None
    message_type: WireInt | None = None
    message_state: WireInt | None = None
    item_list: list[MessageItem] | None = None
    context_token: str | None = None


RefMessage.model_rebuild()


def parse_message(data: object) -> WeixinMessage:
    """One message of a ``getupdates`` answer; ``ValueError`` when it is not one."""
    try:
        return WeixinMessage.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the message"
        raise ValueError(f"{where}: {error_words(first)}") from None


@dataclass(frozen=True, slots=True)
class MediaRef:
    """Where a message's file is on the CDN and how to decrypt it."""

    word: Literal["image", "voice", "file", "video"]
    query_param: str | None
    full_url: str | None
    aes_key: str | None
    hex_key: str | None = None


@dataclass(frozen=True, slots=True)
class ReadMessage:
    """A message as the port sees it, its file, the peer's token, and what was odd in it
    (each a short phrase for the log: an unknown item type, a cut text)."""

    message: Message
    media: MediaRef | None
    peer_id: str
    context_token: str | None
    from_user: bool
    quote_excerpt: str | None
    notes: tuple[str, ...] = ()


def message_id_of(msg: WeixinMessage) -> str:
    """The message's id: ``message_id``, else an item's ``msg_id``, else a digest of the
    message itself (the same message delivered twice has the same digest: its
    ``context_token``, which belongs to the delivery, is left out, and so is its ``seq``
    when its time tells it from another message of the same text)."""
    if msg.message_id and msg.message_id.strip():
        return msg.message_id.strip()
    for item in msg.item_list or ():
        if item.msg_id and item.msg_id.strip():
            return item.msg_id.strip()
    digest = hashlib.sha256(
        json.dumps(
            msg.model_dump(
                mode="json",
                exclude={"context_token", "seq"} if msg.create_time_ms else {"context_token"},
            ),
            sort_keys=True,
        ).encode()
    ).hexdigest()
    return f"ilink-{digest[:24]}"


def read_message(msg: WeixinMessage, *, bot_id: str | None) -> ReadMessage:
    """The port's view of one delivered message: its texts (a voice's transcript among
    them), and one file, chosen as Tencent's client chooses it (:func:`_file_item`).
    ``ValueError`` for a user's message without its sender: no one to answer, nor whose
    reply window it opens."""
    mid = message_id_of(msg)
    from_user = msg.message_type != 2  # a missing type is read as a user's (the usual case)
    sender = msg.from_user_id or ""
    if from_user and not sender.strip():
        said = "missing" if msg.from_user_id is None else "empty"
        raise ValueError(f"from_user_id: {said}: a user's message must name its sender")
    peer = sender if from_user else (msg.to_user_id or "")
    notes: list[str] = []
    texts: list[str] = []
    quote_excerpt: str | None = None
    items = msg.item_list or []
    for item in items:
        if item.ref_msg is not None and quote_excerpt is None:
            quote_excerpt = _ref_excerpt(item.ref_msg)
        if item.type == ITEM_TEXT and item.text_item is not None:
            texts.append(item.text_item.text or "")
        elif item.type == ITEM_VOICE and item.voice_item is not None:
            if item.voice_item.text:
                texts.append(item.voice_item.text)  # the server's transcript: the agent reads it
        elif item.type not in (ITEM_TEXT, ITEM_IMAGE, ITEM_VOICE, ITEM_FILE, ITEM_VIDEO):
            notes.append(f"an item of unknown type {item.type} skipped")
        elif _content(item) is None:
            notes.append(f"an item of type {item.type} without its content skipped")
    kind, media, info = MessageKind.TEXT, None, None
    chosen = _file_item(items)
    if chosen is not None:
        kind, media, info = _file_of(chosen, mid)
        spoken = chosen.voice_item.text if chosen.voice_item is not None else None
        if kind is MessageKind.AUDIO and [t for t in texts if t] != ([spoken] if spoken else []):
            # the gateway reads the text of an audio message as the voice's transcript: a
            # voice quoted, or beside typed text, goes as a file (the text is not all its)
            kind = MessageKind.ATTACHMENT
    text = _cut(("\n".join(t for t in texts if t)), "a text", notes)
    if quote_excerpt is not None:
        quote_excerpt = _cut(quote_excerpt, "a quote", notes)
    if media is None and not text:
        kind = MessageKind.UNKNOWN
    if msg.group_id:  # an iLink bot is in no group: never answered as if it were a DM
        notes.append(f"a group message (group_id {msg.group_id}) skipped: direct chats only")
        kind = MessageKind.UNKNOWN
    if from_user and not msg.context_token:
        notes.append("no context_token (the peer's last one is kept)")
    if not msg.create_time_ms:
        notes.append("no create_time_ms (stamped with the time it arrived)")
    quoted_id = _quoted_id(msg)
    message = Message(
        id=mid,
        kind=kind,
        talker_id=sender if from_user else (bot_id or sender),
        text=text,
        listener_id=bot_id if from_user else peer,
        # on the server's clock; the puppet reads it on ours (see puppet.said_at)
        timestamp=(msg.create_time_ms or 0) / 1000,
        file=info,
        quoted_id=quoted_id,
        quoted_text=quote_excerpt,
    )
    # an empty token is none (the peer's last one is kept), and a group message's is not
    # the direct chat's
    token = None if msg.group_id else (msg.context_token or None)
    return ReadMessage(message, media, peer, token, from_user, quote_excerpt, tuple(notes))


#: which media item is the message's file when it has several (Tencent's client's order)
_PRECEDENCE = (ITEM_IMAGE, ITEM_VIDEO, ITEM_FILE, ITEM_VOICE)
#: what a quote of a media item says of it, when it carries no text
_LABELS = {ITEM_IMAGE: "[image]", ITEM_VIDEO: "[video]", ITEM_FILE: "[file]", ITEM_VOICE: "[voice]"}


def _content(item: MessageItem) -> ImageItem | VoiceItem | FileItem | VideoItem | None:
    """A media item's content (its ``*_item`` of its type); None for any other item."""
    by_type = {
        ITEM_IMAGE: item.image_item,
        ITEM_VOICE: item.voice_item,
        ITEM_FILE: item.file_item,
        ITEM_VIDEO: item.video_item,
    }
    return by_type.get(item.type) if item.type is not None else None


def _addressed(item: MessageItem) -> bool:
    """Whether a media item says where its file is (a query parameter or a URL)."""
    content = _content(item)
    media = content.media if content is not None else None
    return media is not None and bool(media.encrypt_query_param or media.full_url)


def _file_item(items: list[MessageItem]) -> MessageItem | None:
    """The media item whose file the message carries, picked as Tencent's client picks it:
    of the items that say where their file is, the first image, else video, else file,
    else voice; a message with none gets the media item its first quoting text carries
    (the quoted file, for the agent to read along); else, its first media item by that
    order (naming no address: its download fails, with a note to the agent).

    (A voice with its transcript counts: the agent gets its audio beside the transcript,
    where Tencent's client gives the transcript alone.)"""
    own = sorted(
        (i for i in items if _content(i) is not None),
        key=lambda i: _PRECEDENCE.index(i.type or 0),  # (sorted keeps the items' order)
    )
    addressed = next((i for i in own if _addressed(i)), None)
    if addressed is not None:
        return addressed
    for item in items:
        quoted = item.ref_msg.message_item if item.ref_msg is not None else None
        if item.type == ITEM_TEXT and quoted is not None and _content(quoted) is not None:
            return quoted
    return own[0] if own else None


def _file_of(item: MessageItem, mid: str) -> tuple[MessageKind, MediaRef, FileInfo]:
    """A media item's kind, where its file is, and what is known of it (the names are
    ours, by the message's id; a file keeps its name, made safe when it is saved)."""
    if item.type == ITEM_VOICE and item.voice_item is not None:
        voice = item.voice_item
        ext = _VOICE_EXT.get(voice.encode_type or 6, "silk")
        info = FileInfo(
            name=f"voice-{mid}.{ext}",
            size=0,
            mime=_VOICE_MIME.get(voice.encode_type or 6),
            duration_s=(voice.playtime / 1000) if voice.playtime else None,
        )
        return MessageKind.AUDIO, _ref("voice", voice.media), info
    if item.type == ITEM_IMAGE and item.image_item is not None:
        image = item.image_item
        info = FileInfo(name=f"image-{mid}.jpg", size=image.mid_size or 0)
        return MessageKind.IMAGE, _ref("image", image.media, hex_key=image.aeskey), info
    if item.type == ITEM_FILE and item.file_item is not None:
        file = item.file_item
        info = FileInfo(name=file.file_name or f"file-{mid}", size=_length(file.len))
        return MessageKind.ATTACHMENT, _ref("file", file.media), info
    video = item.video_item or VideoItem()  # (the only kind left)
    duration = video.play_length
    info = FileInfo(
        name=f"video-{mid}.mp4",
        size=video.video_size or 0,
        duration_s=float(duration) if duration else None,
    )
    return MessageKind.VIDEO, _ref("video", video.media), info


def _cut(text: str, what: str, notes: list[str]) -> str:
    """``text`` cut to :data:`MAX_TEXT_CHARS` (with a note) when longer."""
    if len(text) <= MAX_TEXT_CHARS:
        return text
    notes.append(f"{what} of {len(text)} characters cut to {MAX_TEXT_CHARS}")
    return text[:MAX_TEXT_CHARS] + f"\n[cut: {len(text) - MAX_TEXT_CHARS} characters more]"


def _length(text: str | None) -> int:
    """A file item's ``len`` (a decimal string); 0 (not known) when it is no plain number."""
    if text and text.isascii() and text.isdigit() and len(text) <= _MAX_LEN_DIGITS:
        return int(text)
    return 0


def _ref(
    word: Literal["image", "voice", "file", "video"],
    media: CdnMedia | None,
    *,
    hex_key: str | None = None,
) -> MediaRef:
    media = media or CdnMedia()
    return MediaRef(word, media.encrypt_query_param, media.full_url, media.aes_key, hex_key)


def _ref_excerpt(ref: RefMessage) -> str | None:
    """What a quote carries of the quoted message (often cut, or only a title)."""
    item = ref.message_item
    if item is not None:
        if item.text_item is not None and item.text_item.text:
            return item.text_item.text
        if item.voice_item is not None and item.voice_item.text:
            return item.voice_item.text
    if ref.title:
        return ref.title
    if item is None or _content(item) is None:
        return None
    # a quoted image, video or file: say what it is (the agent may get it as the file)
    name = item.file_item.file_name if item.file_item is not None else None
    return f"[file: {name}]" if item.type == ITEM_FILE and name else _LABELS[item.type or 0]


def _quoted_id(msg: WeixinMessage) -> str | None:
    for item in msg.item_list or ():
        ref = item.ref_msg
        if ref is None:
            continue
        if ref.svr_id:
            return ref.svr_id
        if ref.message_item is not None and ref.message_item.msg_id:
            return ref.message_item.msg_id
    return None
