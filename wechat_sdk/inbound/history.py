"""History handed to the agent: unanswered group messages and earlier DM turns."""

from __future__ import annotations

from wechat_sdk.agent import HistoryEntry
from wechat_sdk.stores.base import HistoryStore

__all__ = ["HistoryBook", "dm_key", "group_key"]


def group_key(room_id: str) -> str:
    return f"group:{room_id}"


def dm_key(contact_id: str) -> str:
    return f"dm:{contact_id}"


class HistoryBook:
    """One account's view of the history store, with the channel's limits."""

    def __init__(
        self, store: HistoryStore, account_id: str, *, group_limit: int, dm_limit: int
    ) -> None:
        self._store = store
        self._account = account_id
        self._group_limit = group_limit
        self._dm_limit = dm_limit

    def note_unanswered(self, room_id: str, entry: HistoryEntry) -> None:
        """Keep a group message that was not answered, as context for the next answer."""
        if self._group_limit > 0:
            self._store.append(self._account, group_key(room_id), entry, self._group_limit)

    def take_group(self, room_id: str) -> tuple[HistoryEntry, ...]:
        """The pending group history; cleared, since it is being answered now."""
        if self._group_limit <= 0:
            return ()
        key = group_key(room_id)
        entries = tuple(self._store.get(self._account, key))
        if entries:
            self._store.clear(self._account, key)
        return entries

    def dm(self, contact_id: str) -> tuple[HistoryEntry, ...]:
        if self._dm_limit <= 0:
            return ()
        return tuple(self._store.get(self._account, dm_key(contact_id)))

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
        entries = self._store.get(self._account, key)
        users = [e for e in entries if e.role == "user"]
        if len(users) > self._dm_limit:  # trim to whole turns
            cutoff = users[len(users) - self._dm_limit]
            keep = entries[entries.index(cutoff) :]
            self._store.clear(self._account, key)
            for e in keep:
                self._store.append(self._account, key, e, limit)
