"""History handed to the agent: unanswered group messages and earlier DM turns."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from wechat_sdk.agent import HistoryEntry
from wechat_sdk.stores.base import HistoryStore, RemovesHistory

__all__ = [
    "HistoryBook",
    "HistoryLost",
    "dm_key",
    "entry_text",
    "group_key",
    "media_note",
    "reply_text",
]


def group_key(room_id: str) -> str:
    return f"group:{room_id}"


def dm_key(contact_id: str) -> str:
    return f"dm:{contact_id}"


def media_note(kind: str, details: Iterable[str] = ()) -> str:
    """How a file is named in the text the agent reads (``kind`` a MediaItem's):
    ``[image: cat.png]``, ``[voice message: v.silk, 3 s]``, ``[file]``."""
    what = "voice message" if kind in ("voice", "audio") else kind
    said = ", ".join(details)
    return f"[{what}: {said}]" if said else f"[{what}]"


def entry_text(text: str, file_kind: str | None, file_name: str) -> str:
    """A history entry's text: the message's; for a file sent without text, the file
    named (an empty entry would tell the agent nothing of it)."""
    if text or file_kind is None:
        return text
    return media_note(file_kind, [file_name] if file_name else [])


def reply_text(texts: Iterable[str], files: Iterable[tuple[str, str]] = ()) -> str:
    """A reply's history text: the messages of it that went out, joined by a blank line,
    each text as sent and each file (``(kind, name)``: a message without text of its own)
    named as :func:`entry_text` names a user's; ``""`` when nothing went out."""
    named = (entry_text("", kind, name) for kind, name in files)
    return "\n\n".join([*texts, *named])


class HistoryLost(RuntimeError):
    """:meth:`HistoryBook.group_answered` on a history store without ``remove()`` (one
    written before :class:`~wechat_sdk.stores.base.RemovesHistory`) failed after it
    cleared the group's history: ``lost`` messages noted after the turn began, which it
    was putting back, are gone. The error that stopped it is the ``__cause__``."""

    def __init__(self, room_id: str, lost: int) -> None:
        super().__init__(
            f"group {room_id}: {lost} message(s) noted after its turn began could not be put "
            "back in its history (the history store has no remove())"
        )
        self.room_id = room_id
        self.lost = lost


class HistoryBook:
    """One account's view of the history store, with the channel's limits."""

    def __init__(
        self, store: HistoryStore, account_id: str, *, group_limit: int, dm_limit: int
    ) -> None:
        self._store = store
        self._account = account_id
        self._group_limit = group_limit
        self._dm_limit = dm_limit
        # DM conversations this book saw holding whole turns only (user, reply, user,
        # reply...): appending one more such turn keeps them so (the store keeps the
        # 2 * dm_limit newest entries), so they need no read-back to trim
        self._whole_turns: set[str] = set()
        # conversations whose history kept under an earlier limit this book deleted (a
        # limit of 0): nothing is written to them since, so once is enough
        self._emptied: set[str] = set()

    def note_unanswered(self, room_id: str, entry: HistoryEntry) -> None:
        """Keep a group message that was not answered, as context for the next answer."""
        if self._group_limit > 0:
            self._store.append(self._account, group_key(room_id), entry, self._group_limit)

    def group(self, room_id: str) -> tuple[HistoryEntry, ...]:
        """The pending group history, handed to the turn of a message that is answered.
        It stays until that turn is taken (:meth:`group_answered`): a turn the store
        would not let begin is tried again, and its next try needs it too."""
        key = group_key(room_id)
        if self._group_limit <= 0:
            self._empty(key)
            return ()
        return tuple(self._store.get(self._account, key))

    def group_answered(self, room_id: str, handed: Iterable[HistoryEntry]) -> None:
        """The turn ``handed`` went with was taken: those entries are cleared (each goes
        to the agent once); one noted after them stays, for the next answer.

        In one step of the store (:class:`~wechat_sdk.stores.base.RemovesHistory`): when
        it raises, the history is as it was, and handed again with the next answer. A
        store without it is read, cleared and what stays appended again: a failure after
        the clear raises :class:`HistoryLost`, saying how many messages it lost."""
        gone = set(handed)
        if not gone:
            return
        key = group_key(room_id)
        if isinstance(self._store, RemovesHistory):
            self._store.remove(self._account, key, gone)
            return
        stays = [e for e in self._store.get(self._account, key) if e not in gone]
        self._store.clear(self._account, key)
        for i, e in enumerate(stays):
            try:
                self._store.append(self._account, key, e, self._group_limit)
            except Exception as exc:
                raise HistoryLost(room_id, len(stays) - i) from exc

    def dm(self, contact_id: str) -> tuple[HistoryEntry, ...]:
        key = dm_key(contact_id)
        if self._dm_limit <= 0:
            self._empty(key)
            return ()
        entries = tuple(self._store.get(self._account, key))
        if not entries:
            self._know_whole_turns(key)  # an empty conversation holds whole turns only
        return entries

    def record_dm_turn(
        self, contact_id: str, user: HistoryEntry, reply: HistoryEntry | None
    ) -> None:
        """Remember a user turn and the assistant's reply to it."""
        if self._dm_limit <= 0:
            return
        key = dm_key(contact_id)
        limit = self._dm_limit * 2  # user turns with their replies
        self._store.append(self._account, key, user, limit)
        if reply is not None:
            self._store.append(self._account, key, reply, limit)
            if key in self._whole_turns:
                return
        else:
            self._whole_turns.discard(key)
        self._trim_dm(key)

    def record_dm_reply(self, contact_id: str, reply: HistoryEntry) -> None:
        """Add what went out of a reply after the turn it answers was recorded: the rest
        of a reply that a stop cut short, sent after the restart (or that waited for the
        user's next message). It joins the part of that reply recorded with the turn (the
        last entry, when the bot's), as if no stop had cut it: the turn stays whole, and
        a full history, cut to its newest entries, keeps the user's message it answers."""
        if self._dm_limit <= 0:
            return
        key = dm_key(contact_id)
        entries = self._store.get(self._account, key)
        if entries and entries[-1].role == "assistant":
            begun = entries[-1]
            whole = dataclasses.replace(begun, text=f"{begun.text}\n\n{reply.text}")
            if isinstance(self._store, RemovesHistory):  # (a failure between: both kept)
                self._store.append(self._account, key, whole, self._dm_limit * 2 + 1)
                self._store.remove(self._account, key, [begun])
            else:
                self._rewrite(key, [*entries[:-1], whole])
        else:  # nothing of it went out before: it is the turn's reply
            self._store.append(self._account, key, reply, self._dm_limit * 2)
        self._whole_turns.discard(key)
        self._trim_dm(key)

    def _empty(self, key: str) -> None:
        """Delete what an earlier limit kept of a conversation (a limit of 0 keeps none),
        once (a store round trip a message, on Redis, otherwise)."""
        if key not in self._emptied:
            self._store.clear(self._account, key)
            if len(self._emptied) >= _MAX_KNOWN:
                self._emptied.clear()  # (forgetting costs one more delete)
            self._emptied.add(key)

    def _rewrite(self, key: str, entries: list[HistoryEntry]) -> None:
        """``entries`` as the conversation's history, in a store without
        :class:`~wechat_sdk.stores.base.RemovesHistory` (a failure after the clear loses
        what was not appended again)."""
        self._store.clear(self._account, key)
        for e in entries:
            self._store.append(self._account, key, e, self._dm_limit * 2)

    def _trim_dm(self, key: str) -> None:
        entries = self._store.get(self._account, key)
        users = [e for e in entries if e.role == "user"]
        if len(users) > self._dm_limit:  # trim to whole turns
            cutoff = users[len(users) - self._dm_limit]
            keep = entries[entries.index(cutoff) :]
            if isinstance(self._store, RemovesHistory):  # (one step: all kept, or cut)
                self._store.remove(self._account, key, entries[: entries.index(cutoff)])
            else:
                self._rewrite(key, keep)
            entries = keep
        if _whole_turns(entries):
            self._know_whole_turns(key)

    def _know_whole_turns(self, key: str) -> None:
        if len(self._whole_turns) >= _MAX_KNOWN:
            self._whole_turns.clear()  # only a shortcut: forgetting costs a read
        self._whole_turns.add(key)


_MAX_KNOWN = 100_000


def _whole_turns(entries: list[HistoryEntry]) -> bool:
    """User and assistant entries alternate, starting with a user's and ending with a reply."""
    return len(entries) % 2 == 0 and all(
        e.role == ("user" if i % 2 == 0 else "assistant") for i, e in enumerate(entries)
    )
