"""Message payloads of one iLink account: read from the recorded JSON (and kept in a
bounded cache), the bot's own sends, and a quote's text from the recorded history."""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict

from wechat_sdk.adapters.ilink.state import ILinkState
from wechat_sdk.adapters.ilink.wire import ReadMessage, parse_message, read_message
from wechat_sdk.puppet import Message, MessageKind

__all__ = ["Payloads"]

#: payloads kept in memory (the recorded state has them all)
CACHED = 2048


class Payloads:
    """The payloads of the messages an account delivered and sent."""

    def __init__(self, state: ILinkState) -> None:
        self.state = state
        self.self_id: str | None = None
        self._read: OrderedDict[str, ReadMessage] = OrderedDict()

    async def load(self, message_id: str) -> ReadMessage | None:
        """A recorded message (a peer's or the bot's own), or None."""
        read = self._read.get(message_id)
        if read is not None:
            return read
        stored = await self.state.entry(message_id)
        if stored is None:
            return None
        if stored.raw is None:  # the bot's own: its text
            own = Message(
                message_id,
                MessageKind.TEXT,
                self.self_id or "",
                stored.text,
                listener_id=stored.peer,
                timestamp=stored.at,
            )
            return ReadMessage(own, None, stored.peer, None, False, None)
        try:
            data = json.loads(stored.raw)
            read = read_message(parse_message(data), bot_id=self.self_id)
        except ValueError:
            return None
        # when it was said on our clock, as recorded (the wire's time is the server's)
        message = dataclasses.replace(read.message, timestamp=stored.at)
        return await self.keep(dataclasses.replace(read, message=message))

    async def keep(self, read: ReadMessage) -> ReadMessage:
        """Cache a delivered message, its quote's text looked up; the message kept."""
        read = await self._quoting(read)
        self._remember(read)
        return read

    def sent(self, message_id: str, peer: str, text: str, word: str, at: float) -> None:
        """The bot's own send (its self-echo's payload)."""
        kind = MessageKind.TEXT if word == "text" else MessageKind.from_media_word(word)
        own = Message(
            message_id,
            kind,
            self.self_id or "",
            text if word == "text" else "",
            listener_id=peer,
            timestamp=at,
        )
        self._remember(ReadMessage(own, None, peer, None, False, None))

    async def _quoting(self, read: ReadMessage) -> ReadMessage:
        """A quote's text from the recorded history (iLink's copy of it arrives cut), of
        the quoting message's own chat only: a quote naming a message of another chat
        (its id is all a quote says) must not bring that chat's text to this one."""
        quoted = read.message.quoted_id
        if quoted is None:
            return read
        stored = await self.state.entry(quoted)
        if stored is None or not stored.text or stored.peer != read.peer_id:
            return read
        message = dataclasses.replace(read.message, quoted_text=stored.text)
        return dataclasses.replace(read, message=message)

    def _remember(self, read: ReadMessage) -> None:
        self._read[read.message.id] = read
        while len(self._read) > CACHED:
            self._read.popitem(last=False)
