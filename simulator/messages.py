"""The world's messages: made (a contact's, for ``say``), recorded (the bot's, sent
through its puppet), kept, looked up, and written to the transcript."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
from typing import TYPE_CHECKING, Any

from simulator.media import KIND_DEFAULTS, MAX_DURATION_S, MAX_MEDIA_BYTES, make_media_bytes
from simulator.transcript import TranscriptEntry
from wechat_sdk.clock import Clock
from wechat_sdk.puppet import FileInfo, Message, MessageKind, PuppetError

if TYPE_CHECKING:
    from simulator.account import SimAccount
    from simulator.world import _SimRoom

log = logging.getLogger("simulator")

MENTION_SPACE = "\u2005"
AT_ALL = "@所有人"
#: the oldest a message said may be (``age_s``): ten years (its time in milliseconds, an
#: integer on the wire, stays one every client reads)
MAX_AGE_S = 10 * 365 * 86_400


def _media_json(info: FileInfo, kind: MessageKind) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": kind.media_word, "name": info.name, "size": info.size}
    if info.duration_s is not None:
        out["duration"] = info.duration_s
    return out


def check_media(media: dict[str, Any]) -> None:
    """ValueError unless ``media`` (``world.say(media=...)``) has a kind the simulator
    knows (``file`` when left out), a size that is a whole number of bytes, 0 to
    :data:`~simulator.media.MAX_MEDIA_BYTES`, and a duration (if any) that is a finite
    number of seconds, 0 to :data:`~simulator.media.MAX_DURATION_S`."""
    kind = media.get("kind", "file")
    if kind not in KIND_DEFAULTS:
        raise ValueError(
            f"media kind {kind!r} is not one the simulator knows: use one of "
            f"{', '.join(KIND_DEFAULTS)}"
        )
    size = media.get("size", 1024)
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_MEDIA_BYTES:
        raise ValueError(
            f"media size must be a whole number of bytes, 0 to {MAX_MEDIA_BYTES} (100 MiB, "
            f"the largest file the simulator makes); got {size!r}"
        )
    duration = media.get("duration")
    if duration is not None and not finite_seconds(duration, MAX_DURATION_S):
        raise ValueError(
            f"media duration must be a finite number of seconds, 0 to {MAX_DURATION_S} "
            f"(a day); got {duration!r}"
        )


def check_age(age_s: Any) -> None:
    """ValueError unless ``age_s`` (``world.say(age_s=...)``, said that long ago) is a
    finite number of seconds, 0 to :data:`MAX_AGE_S`."""
    if not finite_seconds(age_s, MAX_AGE_S):
        raise ValueError(
            f"age_s must be a finite number of seconds, 0 to {MAX_AGE_S} (ten years); got {age_s!r}"
        )


def finite_seconds(value: Any, most: float = math.inf) -> bool:
    """Whether ``value`` is a finite number, 0 to ``most`` (NaN and Infinity are not)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= most
    )


class MessageStore:
    """The message half of :class:`~simulator.world.SimulatedWeChat` (its base class),
    which sets the attributes declared here."""

    if TYPE_CHECKING:
        rng: random.Random
        time: Clock
        rooms: dict[str, _SimRoom]
        mention_ids: bool
        mention_text: bool
        transcript: list[TranscriptEntry]
        sent_by_account: dict[str, list[TranscriptEntry]]
        _messages: dict[str, Message]
        _files: dict[str, bytes]
        _msg_prefix: str

        @property
        def elapsed(self) -> float: ...

        def _next_id(self, prefix: str) -> str: ...

        def _bots_in(self, room: _SimRoom) -> list[SimAccount]: ...

        def _bot_with_id(self, wxid: str) -> SimAccount | None: ...

        def _deliver(self, sim: SimAccount, msg_id: str) -> None: ...

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
        quote: str | None = None,
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
        if media is not None:  # (checked by say: check_media)
            mkind = str(media.get("kind", "file"))
            default_name, mime = KIND_DEFAULTS[mkind]
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
            quote,  # quoted_id
            self._messages[quote].text if quote is not None else None,  # quoted_text
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
        self._other_bots_hear(sim, message, media, data)
        return msg_id

    def _other_bots_hear(
        self, sender: SimAccount, message: Message, media: dict[str, Any] | None, data: bytes | None
    ) -> None:
        """A bot's message reaches the world's other bot accounts it is said to, as anyone's
        does in WeChat: in a room, every other bot account of it; a DM to another bot
        account, that one. Each gets a message of its own (its own id) from the sending
        bot. (Puppet accounts only: iLink bots are in no group, and hear their users.)"""
        if message.room_id is not None:
            room = self.rooms[message.room_id]
            hearing = [b for b in self._bots_in(room) if b is not sender]
        elif message.listener_id is not None:
            bot = self._bot_with_id(message.listener_id)
            hearing = [bot] if bot is not None and bot is not sender else []
        else:
            return
        for sim in hearing:
            if sim.transport == "ilink":
                continue
            msg_id = self._next_id(self._msg_prefix)
            self._messages[msg_id] = dataclasses.replace(message, id=msg_id)
            if data is not None:
                self._files[msg_id] = data
            sim.history.append(msg_id)
            entry = TranscriptEntry(
                self.elapsed,
                "in",
                sim.id,
                sender.wxid,
                message.listener_id,
                message.room_id,
                message.text or None,
                media,
                msg_id,
            )
            self._record(sim, entry)
            self._deliver(sim, msg_id)

    def _record(self, sim: SimAccount, entry: TranscriptEntry) -> None:
        self.transcript.append(entry)
        if entry.direction == "out":
            self.sent_by_account.setdefault(entry.account, []).append(entry)
        path = sim.transcript_file
        if path is not None:  # puppetOptions.transcript: for a test outside the process
            try:
                with path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(entry.to_json(), ensure_ascii=False) + "\n")
            except OSError as exc:
                log.warning("could not append to the transcript %s: %s", path, exc)
