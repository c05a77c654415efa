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

A batch and its cursor are written in one MULTI/EXEC (WATCH on the messages: an id
another writer recorded meanwhile stays a duplicate), acknowledged by Redis before the
adapter emits anything, as :class:`~wechat_sdk.adapters.ilink.state.SqliteILinkState`
commits before it does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from wechat_sdk.adapters.ilink.session import SessionFile
from wechat_sdk.adapters.ilink.state import Delivered, PeerWindow, Stored

if TYPE_CHECKING:
    from redis import Redis

    from wechat_sdk.puppets import SharedRedis

__all__ = ["NotHolder", "RedisILinkState", "RedisSessionFile"]

PUPPET = "ilink"


class NotHolder(RuntimeError):
    """A state write refused: this gateway no longer holds the account's lease."""


class RedisSessionFile(SessionFile):
    """The kept login in Redis (``...:session``) instead of ``ilink-session.json``."""

    def __init__(self, redis: SharedRedis, account_id: str) -> None:
        from wechat_sdk.stores.redis import connect

        self._key = redis.account_key(PUPPET, account_id, "session")
        self._client: Redis = connect(redis.url)

    def _read(self) -> str:
        raw = self._client.get(self._key)
        if raw is None:
            raise FileNotFoundError(self._key)
        return str(raw)

    def _write(self, data: dict[str, object]) -> None:
        self._client.set(self._key, json.dumps(data))

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
        self._lease_key, self._lease_value = shared.lease_key, shared.lease_value
        # (typed Any: redis-py's stubs give every command "Awaitable[T] | T")
        self._r: Any = AsyncRedis.from_url(
            shared.url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5
        )

    async def cursor(self) -> str:
        return str(await self._r.get(self._cursor) or "")

    async def record(self, batch: Sequence[Delivered], cursor: str | None) -> list[str]:
        from redis.exceptions import WatchError

        while True:
            async with self._r.pipeline(transaction=True) as pipe:
                try:
                    watched = [self._messages, self._user_at]
                    if self._lease_key is not None:
                        watched.append(self._lease_key)
                    await pipe.watch(*watched)
                    if (
                        self._lease_key is not None
                        and await pipe.get(self._lease_key) != self._lease_value
                    ):
                        raise NotHolder(
                            "this gateway no longer holds the account's lease: the batch "
                            "is left for the gateway that does"
                        )
                    return await self._record(pipe, batch, cursor)
                except WatchError:
                    continue  # written meanwhile: read again

    async def _record(self, pipe: Any, batch: Sequence[Delivered], cursor: str | None) -> list[str]:
        ids = [d.id for d in batch]
        known = set()
        if ids:
            found = await pipe.hmget(self._messages, ids)
            known = {i for i, raw in zip(ids, found, strict=True) if raw is not None}
        peers = sorted({d.peer for d in batch if d.from_user})
        user_at: dict[str, float | None] = {}
        if peers:
            values = await pipe.hmget(self._user_at, peers)
            user_at = {
                p: None if v is None else float(v) for p, v in zip(peers, values, strict=True)
            }
        seq = int(await self._r.incrby(self._seq, max(1, len(batch))))
        pipe.multi()
        added: list[str] = []
        for n, d in enumerate(batch):
            if d.id in known:
                continue  # delivered before (or twice in this batch): a duplicate
            known.add(d.id)
            added.append(d.id)
            row = [d.peer, d.from_user, d.at, d.raw, d.text, seq + n]
            pipe.hset(self._messages, d.id, json.dumps(row, ensure_ascii=False))
            pipe.zadd(self._at, {d.id: d.at})
            if not d.from_user:
                continue
            if d.context_token is not None:
                pipe.hset(self._token, d.peer, d.context_token)
            old = user_at.get(d.peer)
            if d.at >= (old or 0.0):
                pipe.hset(self._bot_sent, d.peer, 0)
            newest = max(old or 0.0, d.at)
            user_at[d.peer] = newest
            pipe.hset(self._user_at, d.peer, repr(newest))
        if cursor:
            pipe.set(self._cursor, cursor)
        await pipe.execute()
        return added

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
        seq = int(await self._r.incr(self._seq))
        row = json.dumps([peer, False, at, None, text, seq], ensure_ascii=False)
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hincrby(self._bot_sent, peer, 1)
            pipe.hsetnx(self._messages, message_id, row)
            pipe.zadd(self._at, {message_id: at}, nx=True)
            await pipe.execute()

    async def prune(self, before: float) -> None:
        old = await self._r.zrangebyscore(self._at, "-inf", f"({before!r}")
        if old:
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.hdel(self._messages, *old)
                pipe.zrem(self._at, *old)
                await pipe.execute()

    async def flush(self) -> None:
        """Nothing to do: each write is acknowledged by Redis (its own persistence
        settings say how durable that is)."""

    async def close(self) -> None:
        await self._r.aclose()
