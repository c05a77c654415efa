"""The echo ledger: telling the bot's own messages from everyone else's.

Puppets report the bot's own sends back as messages (echoes). One ledger per account is
the one home of that rule: delivery notes each message it sent (by the id the puppet
returned, when it returned one), and the inbound pipeline asks the ledger first, so a
known echo is dropped without even being loaded. An echo that is loaded (its id was not
known) is noted by its content, which is how delivery settles a send whose outcome was
unknown: if its echo came back, it went out.

Example:
    ```python
    ledger = EchoLedger()
    ledger.sent("m1")
    assert ledger.take_sent("m1") and not ledger.take_sent("m1")
    ```
"""

from __future__ import annotations

from collections import OrderedDict, deque

from wechat_sdk.puppet import Message

__all__ = ["SENT_IDS_KEPT", "EchoLedger", "content_key", "file_key", "text_key"]

#: How many ids of sent messages are remembered until their echo comes back (a burst of
#: replies can be sent before the first echo is read: about 1 MB at most).
SENT_IDS_KEPT = 10_000
#: How many loaded echoes are remembered by their content.
ECHOES_KEPT = 256


def text_key(text: str) -> str:
    """The content key of a text message."""
    return "text:" + text


def file_key(name: str) -> str:
    """The content key of a file message."""
    return "file:" + name


def content_key(message: Message) -> str:
    return file_key(message.file.name) if message.file is not None else text_key(message.text)


class EchoLedger:
    """What one account sent, to recognise the echoes of it."""

    def __init__(self) -> None:
        #: the bot's own WeChat id, kept past a logout (see :meth:`bot_id`)
        self._bot_id: str | None = None
        self._sent_ids: OrderedDict[str, None] = OrderedDict()
        self._seen: deque[tuple[str, str, float]] = deque(maxlen=ECHOES_KEPT)
        self._generation = 0
        self._events = 0

    def connected(self) -> None:
        """A new event stream (a start or a reconnect): what the last one carried is gone."""
        self._generation += 1

    def heard(self) -> None:
        """An event arrived on the stream (any event: the stream is alive)."""
        self._events += 1

    def stream_position(self) -> tuple[int, int]:
        """(streams so far, events so far): how delivery tells a live stream from a silent
        one while it looks for an echo."""
        return self._generation, self._events

    def sent(self, message_id: str | None) -> None:
        """A message went out with this id (None: the puppet did not say)."""
        if message_id:
            self._sent_ids[message_id] = None
            if len(self._sent_ids) > SENT_IDS_KEPT:
                self._sent_ids.popitem(last=False)

    def take_sent(self, message_id: str) -> bool:
        """True (once) if ``message_id`` is a message this account sent."""
        return self._sent_ids.pop(message_id, False) is None

    def logged_in(self, self_id: str) -> None:
        """The account logged in as ``self_id``."""
        self._bot_id = self_id

    def bot_id(self, current: str | None) -> str | None:
        """The bot's own WeChat id: ``current`` (the puppet's) while logged in, else the
        last one it had. A logout clears the puppet's, but events read after it (echoes of
        sends under way, mentions) still name the bot by it."""
        if current is not None:
            self._bot_id = current
        return current or self._bot_id

    def is_own(self, message: Message, current_self_id: str | None) -> bool:
        """True if a loaded message is the bot's own (its talker is the bot, by
        :meth:`bot_id`)."""
        bot = self.bot_id(current_self_id)
        return bot is not None and message.talker_id == bot

    def seen(self, message: Message, at: float) -> None:
        """Note the echo of a loaded message of the bot's own."""
        self.note(message.room_id or message.listener_id or "", content_key(message), at)

    def note(self, conversation_id: str, key: str, at: float) -> None:
        """Note an echo by its conversation and content key (:func:`text_key`,
        :func:`file_key`)."""
        self._seen.append((conversation_id, key, at))

    def seen_since(self, conversation_id: str, key: str, since: float) -> bool:
        """True if an echo with this content came back in this conversation at ``since``
        or later."""
        return any(c == conversation_id and k == key and t >= since for c, k, t in self._seen)
