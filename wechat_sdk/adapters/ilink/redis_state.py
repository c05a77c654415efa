"""An iLink account's session state on the store's Redis server (``store.kind: "redis"``),
so that the gateway taking the account over resumes it: no new QR code (the login), no
message lost or answered twice (the cursor and the messages it covers), replies with the
right ``context_token`` and the reply windows as counted.

Keys, each ``<namespace>:<channel>:transport:ilink:<account>:<name>``
(:meth:`~wechat_sdk.puppets.SharedRedis.account_key`):

- ``session``: the kept login (JSON, as ``ilink-session.json`` holds it)
- ``cursor``: the last ``get_updates_buf`` whose messages are all recorded
- ``messages``: hash, message id -> JSON ``[peer, from_user, at, raw, text, seq]``;
  ``messages-at``: sorted set of the ids by when said (pruned after ``KEEP_S``)
- ``peer-token``, ``peer-user-at``, ``peer-bot-sent``: hashes by peer, the reply window
  (a peer not heard from for ``KEEP_S`` pruned with the messages)
- ``copy-keys``: hash, copy key -> the id of the message recorded with it (a copy under
  a new id is known by it: :mod:`~wechat_sdk.adapters.ilink.copies`); ``copy-keys-at``:
  sorted set of the keys by when their message was said (pruned with the messages)

Each write is one Lua script (atomic, one round trip): a batch and its cursor together,
a message id recorded before staying a duplicate, acknowledged by Redis before the adapter
emits anything, as :class:`~wechat_sdk.adapters.ilink.state.SqliteILinkState` commits
before it does. For an account held by lease (``SharedRedis.lease_key``), every write,
the login's too, is fenced by it in the same script
(:mod:`wechat_sdk.stores.redis.fencing`): an old holder that wakes up after another took
the account over cannot move the cursor, the context tokens, the windows or the login;
its write raises :class:`~wechat_sdk.stores.redis.fencing.LeaseLost`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from wechat_sdk.adapters.ilink.session import SessionFile
from wechat_sdk.adapters.ilink.state import Delivered, PeerWindow, Recorded, Stored
from wechat_sdk.stores.redis.fencing import AsyncWriteScript, Fence, LeaseLost, WriteScript

if TYPE_CHECKING:
    from redis import Redis

    from wechat_sdk.puppets import SharedRedis

__all__ = ["LeaseLost", "RedisILinkState", "RedisSessionFile"]

PUPPET = "ilink"

# The rows of ``messages``: JSON ``[peer, from_user, at, raw, text, seq]``; the scripts get
# them without their ``seq`` (it is taken from ``seq`` in the script) and close them.

# KEYS: messages, messages-at, peer-token, peer-user-at, peer-bot-sent, seq, cursor,
# copy-keys, copy-keys-at.
# ARGV: how many messages, the cursor ('' keeps it), then per message: its id, its row,
# its peer, '1' when it opens the peer's window (Delivered.opens_window), '1' when it has a
# token, the token, when said, its copy key ('' for none).
# Returns the ids recorded now, and for each message recorded before (its id again, or a
# copy of another id's by its copy key) its id and the id it is recorded under, flat.
_RECORD: Final = """
local n = tonumber(ARGV[1])
local added, again = {}, {}
local seq = 0
if n > 0 then seq = redis.call('INCRBY', KEYS[6], n) - n end
for i = 1, n do
  local b = 2 + (i - 1) * 8
  local id, row, peer, at, key = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 7], ARGV[b + 8]
  row = string.sub(row, 1, -2) .. ',' .. (seq + i) .. ']'
  local original = false
  if key ~= '' then original = redis.call('HGET', KEYS[8], key) end
  if original == id then original = false end
  if not original and redis.call('HSETNX', KEYS[1], id, row) == 0 then original = id end
  if original then
    again[#again + 1] = id
    again[#again + 1] = original
    if ARGV[b + 4] == '1' and ARGV[b + 5] == '1' and redis.call('HEXISTS', KEYS[4], peer) == 1 then
      redis.call('HSET', KEYS[3], peer, ARGV[b + 6])
    end
  else
    added[#added + 1] = id
    redis.call('ZADD', KEYS[2], at, id)
    if key ~= '' and redis.call('HSETNX', KEYS[8], key, id) == 1 then
      redis.call('ZADD', KEYS[9], at, key)
    end
    if ARGV[b + 4] == '1' then
      if ARGV[b + 5] == '1' then redis.call('HSET', KEYS[3], peer, ARGV[b + 6]) end
      local old = redis.call('HGET', KEYS[4], peer)
      if not old or tonumber(at) >= tonumber(old) then
        redis.call('HSET', KEYS[5], peer, 0)
        redis.call('HSET', KEYS[4], peer, at)
      end
    end
  end
end
if ARGV[2] ~= '' then redis.call('SET', KEYS[7], ARGV[2]) end
return {added, again}
"""

# KEYS: messages, messages-at, peer-bot-sent, seq. ARGV: peer, message id, row, when.
_SENT: Final = """
local row = string.sub(ARGV[3], 1, -2) .. ',' .. redis.call('INCR', KEYS[4]) .. ']'
redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
redis.call('HSETNX', KEYS[1], ARGV[2], row)
redis.call('ZADD', KEYS[2], 'NX', ARGV[4], ARGV[2])
return 0
"""

# KEYS: messages, messages-at, peer-token, peer-user-at, peer-bot-sent, copy-keys,
# copy-keys-at. ARGV: before when (excluded). The peers whose last message is older go
# with the messages, and so do the copy keys of the messages.
_PRUNE: Final = """
local before = tonumber(ARGV[1])
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
for i = 1, #old do redis.call('HDEL', KEYS[1], old[i]) end
if #old > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1]) end
local keys = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', '(' .. ARGV[1])
for i = 1, #keys do redis.call('HDEL', KEYS[6], keys[i]) end
if #keys > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. ARGV[1]) end
local peers = redis.call('HGETALL', KEYS[4])
for i = 1, #peers, 2 do
  if tonumber(peers[i + 1]) < before then
    redis.call('HDEL', KEYS[3], peers[i])
    redis.call('HDEL', KEYS[4], peers[i])
    redis.call('HDEL', KEYS[5], peers[i])
  end
end
return #old
"""

# KEYS: cursor, messages, messages-at, peer-token, peer-user-at, peer-bot-sent, copy-keys,
# copy-keys-at (a fenced script has the lease key after them: they are named, not counted).
_FORGET: Final = """
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8])
return 0
"""

# KEYS: session. ARGV: the login (JSON).
_KEEP: Final = """
redis.call('SET', KEYS[1], ARGV[1])
return 0
"""


def _fence(shared: SharedRedis, account_id: str) -> Fence | None:
    """The account's lease as this gateway holds it, if it holds it by lease."""
    if shared.lease_key is None or shared.lease_value is None:
        return None
    return Fence(account_id, shared.lease_key, shared.lease_value, on_lost=shared.on_lost)


def _row(peer: str, from_user: bool, at: float, raw: str | None, text: str) -> str:
    """A ``messages`` row without its ``seq`` (the script adds it)."""
    return json.dumps([peer, from_user, at, raw, text], ensure_ascii=False)


class RedisSessionFile(SessionFile):
    """The kept login in Redis (``...:session``) instead of ``ilink-session.json``."""

    def __init__(self, redis: SharedRedis, account_id: str) -> None:
        from wechat_sdk.stores.redis import connect

        self._key = redis.account_key(PUPPET, account_id, "session")
        self._client: Redis = connect(redis.url)
        self._fence = _fence(redis, account_id)
        self._keep = WriteScript(self._client, _KEEP, "login write")

    def _read(self) -> str:
        raw = self._client.get(self._key)
        if raw is None:
            raise FileNotFoundError(self._key)
        return str(raw)

    def _write(self, data: dict[str, object]) -> None:
        self._keep(self._fence, [self._key], [json.dumps(data)])

    def close(self) -> None:
        self._client.close()


class RedisILinkState:
    """:class:`~wechat_sdk.adapters.ilink.state.ILinkState` in Redis (see the module)."""

    def __init__(self, shared: SharedRedis, account_id: str) -> None:
        from redis.asyncio import Redis as AsyncRedis

        def key(name: str) -> str:
            return shared.account_key(PUPPET, account_id, name)

        self._cursor, self._messages, self._at = key("cursor"), key("messages"), key("messages-at")
        self._token, self._user_at = key("peer-token"), key("peer-user-at")
        self._bot_sent, self._seq = key("peer-bot-sent"), key("seq")
        self._copy_keys, self._copy_keys_at = key("copy-keys"), key("copy-keys-at")
        self._fence = _fence(shared, account_id)
        from wechat_sdk.stores.redis.store import client_options

        # (typed Any: redis-py's stubs give every command "Awaitable[T] | T")
        self._r: Any = AsyncRedis.from_url(shared.url, **client_options(5))
        self._record = AsyncWriteScript(self._r, _RECORD, "iLink state write")
        self._sent = AsyncWriteScript(self._r, _SENT, "iLink state write")
        self._prune = AsyncWriteScript(self._r, _PRUNE, "iLink state write")
        self._forget = AsyncWriteScript(self._r, _FORGET, "iLink state write")

    async def cursor(self) -> str:
        return str(await self._r.get(self._cursor) or "")

    async def record(self, batch: Sequence[Delivered], cursor: str | None) -> Recorded:
        args: list[str | int | float] = [len(batch), cursor or ""]
        for d in batch:
            args += [
                d.id,
                _row(d.peer, d.from_user, d.at, d.raw, d.text),
                d.peer,
                "1" if d.opens_window else "0",
                "0" if d.context_token is None else "1",
                d.context_token or "",
                repr(float(d.at)),
                d.copy_key or "",
            ]
        keys = [self._messages, self._at, self._token, self._user_at, self._bot_sent]
        keys += [self._seq, self._cursor, self._copy_keys, self._copy_keys_at]
        added, again = await self._record(self._fence, keys, args)
        pairs = [str(i) for i in again]
        return Recorded([str(i) for i in added], list(zip(pairs[::2], pairs[1::2], strict=True)))

    async def recent(self, since: float) -> list[str]:
        ids = await self._r.zrangebyscore(self._at, since, "+inf")
        rows = await self._r.hmget(self._messages, ids) if ids else []
        found = []
        for message_id, raw in zip(ids, rows, strict=True):
            if raw is None:
                continue
            _peer, from_user, at, _raw, _text, seq = json.loads(raw)
            if from_user:
                found.append((at, seq, str(message_id)))
        return [i for _, _, i in sorted(found)]

    async def entry(self, message_id: str) -> Stored | None:
        raw = await self._r.hget(self._messages, message_id)
        if raw is None:
            return None
        peer, from_user, at, raw_json, text, _seq = json.loads(raw)
        return Stored(message_id, peer, bool(from_user), float(at), raw_json, text)

    async def windows(self) -> dict[str, PeerWindow]:
        user_at = await self._r.hgetall(self._user_at)
        bot_sent = await self._r.hgetall(self._bot_sent)
        return {
            peer: PeerWindow(
                None if user_at.get(peer) is None else float(user_at[peer]),
                int(bot_sent.get(peer, 0)),
            )
            for peer in {*user_at, *bot_sent}
        }

    async def context_token(self, peer: str) -> str | None:
        token = await self._r.hget(self._token, peer)
        return None if token is None else str(token)

    async def window(self, peer: str) -> PeerWindow:
        at = await self._r.hget(self._user_at, peer)
        sent = await self._r.hget(self._bot_sent, peer)
        return PeerWindow(None if at is None else float(at), int(sent or 0))

    async def sent(self, peer: str, message_id: str, text: str, at: float) -> None:
        await self._sent(
            self._fence,
            [self._messages, self._at, self._bot_sent, self._seq],
            [peer, message_id, _row(peer, False, at, None, text), repr(float(at))],
        )

    async def prune(self, before: float) -> None:
        keys = [self._messages, self._at, self._token, self._user_at, self._bot_sent]
        keys += [self._copy_keys, self._copy_keys_at]
        await self._prune(self._fence, keys, [repr(float(before))])

    async def forget_all(self) -> None:
        # (seq stays: it only orders the rows, and goes on counting from where it was)
        keys = [self._cursor, self._messages, self._at, self._token, self._user_at]
        keys += [self._bot_sent, self._copy_keys, self._copy_keys_at]
        await self._forget(self._fence, keys, [])

    async def flush(self) -> None:
        """Nothing to do: each write is acknowledged by Redis (its own persistence
        settings say how durable that is)."""

    async def close(self) -> None:
        await self._r.aclose()
