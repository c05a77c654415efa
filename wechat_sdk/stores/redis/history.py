"""Conversation history and the dedupe window in Redis: each append, clear, removal or
check one Lua script, so it is atomic and costs one round trip; fenced by the account's
lease for a gateway that holds it (:mod:`wechat_sdk.stores.redis.fencing`)."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from wechat_sdk.agent import HistoryEntry
from wechat_sdk.stores.base import DEFAULT_DEDUPE_MAX_ENTRIES, DEFAULT_MAX_CONVERSATIONS
from wechat_sdk.stores.redis.codec import entry_from_json, entry_to_json
from wechat_sdk.stores.redis.fencing import Fence, WriteScript
from wechat_sdk.stores.redis.keys import Keys, escape

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["RedisDedupeStore", "RedisHistoryStore"]

# KEYS: the conversation's list, the account's conversations, the sequence.
# ARGV: the entry, the limit, the conversation (escaped), the bound, the lists' prefix.
_APPEND: Final = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[3])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  local old = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #old, 2 do redis.call('DEL', ARGV[5] .. old[i]) end
end
return 0
"""

# KEYS: the conversation's list, the account's conversations. ARGV: the conversation.
_CLEAR: Final = """
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 0
"""

# KEYS: the conversation's list, the account's conversations. ARGV: the conversation, how
# many entries to remove, then those entries. (LREM takes out every row equal to one; a
# list left empty is gone, and its conversation with it: not a use otherwise.)
_REMOVE: Final = """
local n = tonumber(ARGV[2])
for i = 3, n + 2 do redis.call('LREM', KEYS[1], 0, ARGV[i]) end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 0
"""

# KEYS: the account's seen times, their order, the sequence, the marks' claims.
# ARGV: the message id, now, the ttl, the bound, the claim ("": none). Returns 1 for a
# duplicate (a mark of the same claim is none: its check's answer was lost, and it is
# asked again).
_CHECK_AND_ADD: Final = """
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local at = redis.call('HGET', KEYS[1], ARGV[1])
if at and now - tonumber(at) < ttl then
  if ARGV[5] ~= '' and redis.call('HGET', KEYS[4], ARGV[1]) == ARGV[5] then return 0 end
  return 1
end
if at then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
end
while true do
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #head == 0 then break end
  local head_at = redis.call('HGET', KEYS[1], head[1])
  if head_at and now - tonumber(head_at) < ttl then break end
  redis.call('ZREM', KEYS[2], head[1])
  redis.call('HDEL', KEYS[1], head[1])
  redis.call('HDEL', KEYS[4], head[1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[4], ARGV[1], ARGV[5]) end
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  local old = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #old, 2 do
    redis.call('HDEL', KEYS[1], old[i])
    redis.call('HDEL', KEYS[4], old[i])
  end
end
return 0
"""


class RedisHistoryStore:
    """:class:`~wechat_sdk.stores.base.HistoryStore` (and
    :class:`~wechat_sdk.stores.base.RemovesHistory`) in Redis: a list per conversation,
    a sorted set of each account's conversations by last append (the LRU bound)."""

    def __init__(
        self, client: Redis, keys: Keys, max_conversations: int = DEFAULT_MAX_CONVERSATIONS
    ) -> None:
        if max_conversations < 1:
            raise ValueError("max_conversations must be at least 1")
        self._r = client
        self._k = keys
        self.max_conversations = max_conversations
        self._append = WriteScript(client, _APPEND, "history write")
        self._clear = WriteScript(client, _CLEAR, "history write")
        self._remove = WriteScript(client, _REMOVE, "history write")
        #: the lease every write checks (None: unfenced)
        self.fence: Fence | None = None

    def fenced(self, fence: Fence) -> RedisHistoryStore:
        """This store, its writes refused
        (:class:`~wechat_sdk.stores.redis.fencing.LeaseLost`) unless Redis holds
        ``fence``'s lease."""
        view = copy.copy(self)
        view.fence = fence
        return view

    def append(self, account_id: str, key: str, entry: HistoryEntry, limit: int) -> None:
        """See :meth:`HistoryStore.append`."""
        if limit <= 0:
            self.clear(account_id, key)
            return
        k = self._k
        self._append(
            self.fence,
            [k.history(account_id, key), k.history_conversations(account_id), k.sequence],
            [
                entry_to_json(entry),
                limit,
                escape(key),
                self.max_conversations,
                k.history(account_id, ""),
            ],
        )

    def get(self, account_id: str, key: str) -> list[HistoryEntry]:
        """See :meth:`HistoryStore.get`."""
        rows: list[str] = self._r.lrange(self._k.history(account_id, key), 0, -1)  # type: ignore[assignment]
        return [entry_from_json(r) for r in rows]

    def clear(self, account_id: str, key: str) -> None:
        """See :meth:`HistoryStore.clear`."""
        k = self._k
        self._clear(
            self.fence,
            [k.history(account_id, key), k.history_conversations(account_id)],
            [escape(key)],
        )

    def remove(self, account_id: str, key: str, entries: Iterable[HistoryEntry]) -> None:
        """See :meth:`RemovesHistory.remove` (one script: atomic, fenced as every write)."""
        rows = list(dict.fromkeys(map(entry_to_json, entries)))  # (as append wrote them)
        if not rows:
            return
        k = self._k
        self._remove(
            self.fence,
            [k.history(account_id, key), k.history_conversations(account_id)],
            [escape(key), len(rows), *rows],
        )


class RedisDedupeStore:
    """:class:`~wechat_sdk.stores.base.DedupeStore` in Redis: each account's marks with
    their times, and their order (the bound forgets the oldest)."""

    def __init__(
        self, client: Redis, keys: Keys, max_entries: int = DEFAULT_DEDUPE_MAX_ENTRIES
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._k = keys
        self.max_entries = max_entries
        self._check = WriteScript(client, _CHECK_AND_ADD, "dedupe mark")
        #: marks this process recorded (the store's mark position)
        self.recorded = 0
        #: the lease every mark checks (None: unfenced)
        self.fence: Fence | None = None

    def fenced(self, fence: Fence) -> RedisDedupeStore:
        """This store, its marks refused
        (:class:`~wechat_sdk.stores.redis.fencing.LeaseLost`: the message is not marked
        seen) unless Redis holds ``fence``'s lease."""
        view = copy.copy(self)
        view.fence = fence
        return view

    def check_and_add(
        self, account_id: str, message_id: str, now: float, ttl: float, claim: str = ""
    ) -> bool:
        """See :meth:`DedupeStore.check_and_add` (atomic: two gateways checking the same
        message at once, one of them sees a duplicate; the claims of the marks in a hash
        of their own, beside their times, which gateways older than claims read)."""
        k = self._k
        seen = self._check(
            self.fence,
            [
                k.dedupe_seen(account_id),
                k.dedupe_order(account_id),
                k.sequence,
                k.dedupe_claims(account_id),
            ],
            [message_id, repr(float(now)), repr(float(ttl)), self.max_entries, claim],
        )
        if seen:
            return True
        self.recorded += 1
        return False
