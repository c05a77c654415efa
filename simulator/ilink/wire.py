"""The world's messages as iLink's JSON (``WeixinMessage``), and a bot's ``sendmessage``
read back into the world: item types, the CDN references of media, and the checks the
server makes on what a bot sends."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from simulator.ilink.cdn import aes_key_from_wire, decrypt
from wechat_sdk.logtext import shown
from wechat_sdk.puppet import MessageKind

if TYPE_CHECKING:
    from simulator.ilink.state import ILinkBot, Queued

__all__ = [
    "ITEM_FILE",
    "ITEM_IMAGE",
    "ITEM_TEXT",
    "ITEM_VIDEO",
    "ITEM_VOICE",
    "MAX_TEXT_CHARS",
    "NotJson",
    "OutItem",
    "WireError",
    "check_kind",
    "inbound_message",
    "json_text",
    "read_json_object",
    "read_outbound",
]

ITEM_TEXT, ITEM_IMAGE, ITEM_VOICE, ITEM_FILE, ITEM_VIDEO = 1, 2, 3, 4, 5
MESSAGE_TYPE_USER, MESSAGE_TYPE_BOT = 1, 2
MESSAGE_STATE_FINISH = 2
#: the longest text item the server takes, in UTF-16 code units (JavaScript's string
#: length: Tencent's client cuts its messages at 4000 of them, where an emoji beyond the
#: BMP counts 2)
MAX_TEXT_CHARS = 4000
#: how much of a quoted message's text a quote carries (iLink's quotes arrive cut)
QUOTE_CHARS = 20
#: a voice item's encode_type: 6 is SILK, what WeChat records
ENCODE_SILK = 6

_MEDIA_ITEMS = {
    ITEM_IMAGE: ("image_item", "image"),
    ITEM_VOICE: ("voice_item", "audio"),
    ITEM_FILE: ("file_item", "file"),
    ITEM_VIDEO: ("video_item", "video"),
}


class WireError(ValueError):
    """A request the server refuses; the message is its ``errmsg``."""


class NotJson(ValueError):
    """A request body the server does not read; the message says what to change."""


def read_json_object(raw: bytes) -> dict[str, Any]:
    """A request body (empty: ``{}``) as a JSON object, read as every language reads JSON.

    :class:`NotJson` when it is not JSON (or nested deeper than Python's parser goes), not
    an object, or holds NaN or Infinity: Python's json reads those and other languages'
    parsers do not, so the simulator takes none and never hands one back to a client.
    """
    try:
        body = json.loads(raw) if raw else {}
    except (ValueError, RecursionError):
        raise NotJson("the body is not JSON") from None
    if not isinstance(body, dict):
        raise NotJson("the body must be a JSON object")
    where = _not_finite(body)
    if where is not None:
        path, value = where
        raise NotJson(f"{path}: {json.dumps(value)} is not standard JSON: send a finite number")
    return body


def _not_finite(value: Any, path: str = "") -> tuple[str, float] | None:
    """The dotted path and value of the first NaN or Infinity in parsed JSON, if any (a
    number past a double's range, ``1e400``, reads as Infinity)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path or "(body)", value)
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _not_finite(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def json_text(data: Any) -> str:
    """``data`` as the JSON text of an answer: standard JSON, never NaN or Infinity (a
    ValueError here is a bug of the simulator, answered 500, not a malformed answer)."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False)


def inbound_message(bot: ILinkBot, queued: Queued) -> dict[str, Any]:
    """A user message as ``getupdates`` gives it (its media put on the CDN, encrypted);
    the messages said with it (:meth:`ILinkBot.one_message`) add their items to it."""
    state = bot.state
    message = state.world._messages[queued.message_id]
    items = [item for mid in (queued.message_id, *queued.also) for item in _items(bot, mid)]
    created_ms = int(message.timestamp * 1000)
    for item in items:
        item["create_time_ms"] = created_ms
    return {
        "seq": queued.seq,
        "message_id": state.wire_id(message.id),
        "from_user_id": message.talker_id,
        "to_user_id": bot.sim.wxid,
        "create_time_ms": created_ms,
        "session_id": "",
        "message_type": MESSAGE_TYPE_USER,
        "message_state": MESSAGE_STATE_FINISH,
        "item_list": items,
        "context_token": bot.context_token(message.talker_id),
    }


def check_kind(kind: str | None, media_kind: str | None) -> None:
    """ValueError unless a message said to an iLink bot with ``kind`` (a
    :class:`~wechat_sdk.puppet.MessageKind` word, or None) and a file of ``media_kind``
    (a media word, or None) is what the bot gets (:func:`_items`): iLink's items are text
    and files, so a message is a text, or its file's kind; anything else reached the bot as
    a text all the same. ``world.say`` and the control API's ``POST /sim/messages`` both
    ask it."""
    if kind is None:
        return
    if media_kind is not None:
        made = MessageKind.from_media_word(media_kind)
        if kind != made:
            raise ValueError(
                f'"{kind}" is not this message\'s kind: its media.kind "{media_kind}" '
                f'makes it "{made}"; leave kind out'
            )
    elif MessageKind(kind).has_file:
        raise ValueError(
            f'a message of kind "{kind}" carries a file: give media '
            f'{{"kind": "{MessageKind(kind).media_word}"}}, or leave kind out, and the '
            "message is a text"
        )
    elif kind != MessageKind.TEXT:
        raise ValueError(
            f'iLink has no item for a message of kind "{kind}" (its items are text, '
            "image, voice, file and video): leave kind out, and the message is a text"
        )


def _items(bot: ILinkBot, message_id: str) -> list[dict[str, Any]]:
    """A world message's items: its text (a voice's is its transcript, in the voice item),
    its file, and its quote on the first."""
    world = bot.state.world
    message = world._messages[message_id]
    items: list[dict[str, Any]] = []
    data = world._files.get(message.id)
    if message.file is not None and data is not None:
        items.append(_media_item(bot, message.kind, message.id, message.text, data))
        if message.text and message.kind is not MessageKind.AUDIO:
            items.insert(0, {"type": ITEM_TEXT, "text_item": {"text": message.text}})
    else:
        items.append({"type": ITEM_TEXT, "text_item": {"text": message.text}})
    if message.quoted_id is not None:
        items[0]["ref_msg"] = _ref(bot, message.quoted_id)
    return items


def _ref(bot: ILinkBot, quoted_id: str) -> dict[str, Any]:
    """A quote as iLink sends it: the quoted message's id, and its text cut short, or its
    file's item (the file on the CDN, as Tencent's client downloads it from a quote)."""
    world = bot.state.world
    quoted = world._messages[quoted_id]
    data = world._files.get(quoted_id)
    if quoted.file is not None and data is not None:
        item = _media_item(bot, quoted.kind, quoted_id, quoted.text, data)
    else:
        item = {"type": ITEM_TEXT, "text_item": {"text": quoted.text[:QUOTE_CHARS]}}
    return {"svr_id": bot.state.wire_id(quoted_id), "title": "", "message_item": item}


def _media_item(
    bot: ILinkBot, kind: MessageKind, message_id: str, text: str, data: bytes
) -> dict[str, Any]:
    published = bot.state.cdn.publish(data, message_id)
    info = bot.state.world._messages[message_id].file
    assert info is not None
    media = {"encrypt_query_param": published.param, "encrypt_type": 1}
    cdn = bot.state.cdn_base_url
    if cdn:
        param = quote(published.param, safe="")
        media["full_url"] = f"{cdn}/download?encrypted_query_param={param}"
    if kind in (MessageKind.IMAGE, MessageKind.EMOTICON):
        # images carry the raw key twice: hex in image_item.aeskey, base64 in media.aes_key
        media["aes_key"] = base64.b64encode(published.key).decode()
        return {
            "type": ITEM_IMAGE,
            "image_item": {
                "media": media,
                "aeskey": published.key.hex(),
                "mid_size": published.ciphertext_size,
            },
        }
    # file, voice and video keys: base64 of the key's hex text (as seen from the server)
    media["aes_key"] = base64.b64encode(published.key.hex().encode()).decode()
    if kind is MessageKind.AUDIO:
        return {
            "type": ITEM_VOICE,
            "voice_item": {
                "media": media,
                "encode_type": ENCODE_SILK,
                "sample_rate": 24000,
                "playtime": int((info.duration_s or 0) * 1000),
                "text": text,  # the server's transcript of the voice
            },
        }
    if kind is MessageKind.VIDEO:
        return {
            "type": ITEM_VIDEO,
            "video_item": {
                "media": media,
                "video_size": published.ciphertext_size,
                "video_md5": hashlib.md5(data).hexdigest(),
            },
        }
    return {
        "type": ITEM_FILE,
        "file_item": {
            "media": media,
            "file_name": info.name,
            "md5": hashlib.md5(data).hexdigest(),
            "len": str(len(data)),
        },
    }


@dataclass(frozen=True)
class OutItem:
    """One item of a bot's message, read: text, or a file decrypted from the CDN."""

    text: str | None = None
    media: dict[str, Any] | None = None
    data: bytes | None = None
    voice: bool = False  # accepted and dropped: the server does not deliver bot voice


def read_outbound(bot: ILinkBot, msg: object) -> tuple[str, list[OutItem]]:
    """The receiver and items of a ``sendmessage`` body's ``msg``, checked the way the
    server checks it; :class:`WireError` says what is wrong."""
    if not isinstance(msg, dict):
        raise WireError("msg is required (an object)")
    to = msg.get("to_user_id")
    if not isinstance(to, str) or not to:
        raise WireError("msg.to_user_id is required")
    client_id = msg.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise WireError("msg.client_id is required (unique per message)")
    if msg.get("message_type") != MESSAGE_TYPE_BOT:
        raise WireError("msg.message_type must be 2 (a bot message)")
    token = msg.get("context_token")
    if not isinstance(token, str) or not token:
        raise WireError("msg.context_token is required: reply with the user's context_token")
    if bot.context_tokens.get(to) != token:
        raise WireError("msg.context_token is not the one of this user")
    raw_items = msg.get("item_list")
    if not isinstance(raw_items, list) or not raw_items:
        raise WireError("msg.item_list is empty")
    return to, [_read_item(bot, item) for item in raw_items]


def _read_item(bot: ILinkBot, item: object) -> OutItem:
    if not isinstance(item, dict):
        raise WireError("each item of msg.item_list must be an object")
    kind = item.get("type")
    if not isinstance(kind, int) or isinstance(kind, bool):
        raise WireError(
            f"unknown item type: a {type(kind).__name__}, not a number "
            "(1 text, 2 image, 3 voice, 4 file, 5 video)"
        )
    if kind == ITEM_TEXT:
        text_item = item.get("text_item")
        text = text_item.get("text") if isinstance(text_item, dict) else None
        if not isinstance(text, str) or not text:
            raise WireError("a text item needs text_item.text (text_item an object)")
        units = len(text.encode("utf-16-le", "surrogatepass")) // 2
        if units > MAX_TEXT_CHARS:
            raise WireError(f"text_item.text is {units} UTF-16 units long, over {MAX_TEXT_CHARS}")
        return OutItem(text=text)
    if kind not in _MEDIA_ITEMS:
        raise WireError(f"unknown item type {shown(kind)}")
    field_name, word = _MEDIA_ITEMS[kind]
    body = item.get(field_name)
    if not isinstance(body, dict):
        raise WireError(f"a type {kind} item needs {field_name}")
    data = _fetch(bot, body, field_name)
    media: dict[str, Any] = {"kind": word, "name": _name(body, word), "size": len(data)}
    if kind == ITEM_VOICE:
        media["duration"] = (body.get("playtime") or 0) / 1000
    return OutItem(media=media, data=data, voice=kind == ITEM_VOICE)


def _fetch(bot: ILinkBot, body: dict[str, Any], field_name: str) -> bytes:
    media = body.get("media")
    if not isinstance(media, dict) or not isinstance(media.get("encrypt_query_param"), str):
        raise WireError(f"{field_name}.media.encrypt_query_param is required")
    ciphertext = bot.state.cdn.ciphertext(media["encrypt_query_param"])
    if ciphertext is None:
        raise WireError(f"{field_name}.media.encrypt_query_param is not on the CDN")
    try:
        if isinstance(body.get("aeskey"), str):
            key = aes_key_from_wire(body["aeskey"], hex_text=True)
        else:
            key = aes_key_from_wire(str(media.get("aes_key") or ""))
        return decrypt(ciphertext, key)
    except ValueError:
        raise WireError(f"{field_name}: the file does not decrypt with its aes_key") from None


def _name(body: dict[str, Any], word: str) -> str:
    name = body.get("file_name")
    if isinstance(name, str) and name:
        return name
    return {"image": "image.jpg", "video": "video.mp4", "audio": "voice.silk"}.get(word, "file")
