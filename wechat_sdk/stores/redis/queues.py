"""The outbox, the webhook queue and the HTTP API's idempotency keys in Redis.

Each item is a JSON value in one hash, with a sorted set per account (outbox) or per
endpoint (webhooks) giving the order; every change is one MULTI/EXEC or Lua script (the
outbox's fenced by the account's lease for a gateway that holds it:
:mod:`wechat_sdk.stores.redis.fencing`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from wechat_sdk.stores.base import IdempotentRequest, OutboxItem, OutboxState, WebhookDelivery
from wechat_sdk.stores.redis.atomic import transact
from wechat_sdk.stores.redis.codec import (
    idempotent_from_json,
    idempotent_to_json,
    item_from_json,
    item_to_json,
    webhook_from_json,
    webhook_to_json,
)
from wechat_sdk.stores.redis.fencing import Fence, WriteScript
from wechat_sdk.stores.redis.keys import Keys

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

__all__ = ["RedisIdempotencyStore", "RedisOutboxStore", "RedisWebhookQueue"]


def _ids(client: Redis, keys: Keys, n: int) -> range:
    """``n`` new ids, increasing."""
    last = int(client.incrby(keys.sequence, n))  # type: ignore[arg-type]
    return range(last - n + 1, last + 1)


# KEYS: the items, their states, the sequence, each new item's account's sorted set,
# then each old item's. ARGV: how many new items, how many old, then each new item's JSON
# before and after its id and its state, then each old item's id. The old ones go and the
# new ones come in one step, their ids taken here. Returns the first new id.
_ADD: Final = """
local n, m = tonumber(ARGV[1]), tonumber(ARGV[2])
for j = 1, m do
  local id = ARGV[2 + 3 * n + j]
  redis.call('HDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3 + n + j], id)
end
local first = redis.call('INCRBY', KEYS[3], n) - n + 1
for i = 1, n do
  local id = tostring(first + i - 1)
  redis.call('HSET', KEYS[1], id, ARGV[3 * i] .. '"id": ' .. id .. ARGV[3 * i + 1])
  redis.call('HSET', KEYS[2], id, ARGV[3 * i + 2])
  redis.call('ZADD', KEYS[3 + i], id, id)
end
return first
"""

_NO_ID: Final = '"id": 0'


def _around_id(item: OutboxItem) -> tuple[str, str]:
    """The item's JSON (its id 0) before and after ``"id": 0``: the key, found
    wherever it is (a ``"`` inside a string value is escaped, so no text matches)."""
    head, found, tail = item_to_json(dataclasses.replace(item, id=0)).partition(_NO_ID)
    assert found, "item_to_json writes the id as a key"
    return head, tail


# KEYS: the items, their states. ARGV: the id, the state. Only an item that is there.
_SET_STATE: Final = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return 0
"""

# KEYS: the items, their states. ARGV: the id, the prefix of the accounts' sorted sets.
# The account's key is made here as Keys.outbox_account makes it (% and : escaped).
_DELETE: Final = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local account = cjson.decode(raw)['account_id']
account = string.gsub(account, '%%', '%%25')
account = string.gsub(account, ':', '%%3A')
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', ARGV[2] .. account, ARGV[1])
return 1
"""


class RedisOutboxStore:
    """:class:`~wechat_sdk.stores.base.OutboxStore` in Redis (keys: ``outbox:*``): each
    item's JSON, its state apart (a change of state is one small write), the order per
    account; an add, a change of state or a delete is one Lua script (one round trip)."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        self._r = client
        self._k = keys
        self._add = WriteScript(client, _ADD, "outbox write")
        self._set_state = WriteScript(client, _SET_STATE, "outbox write")
        self._delete = WriteScript(client, _DELETE, "outbox write")
        #: the lease every write checks (None: unfenced)
        self.fence: Fence | None = None

    def fenced(self, fence: Fence) -> RedisOutboxStore:
        """This outbox, its writes refused
        (:class:`~wechat_sdk.stores.redis.fencing.LeaseLost`) unless Redis holds
        ``fence``'s lease: an old holder cannot put back work the new holder has done."""
        view = copy.copy(self)
        view.fence = fence
        return view

    def add(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        """See :meth:`OutboxStore.add` (one Lua script, the ids taken in it)."""
        return self.replace((), items)

    def replace(self, old: Sequence[OutboxItem], new: Sequence[OutboxItem]) -> list[OutboxItem]:
        """See :meth:`OutboxStore.replace` (one Lua script, as :meth:`add`)."""
        if not old and not new:
            return []
        k = self._k
        first = int(
            self._add(
                self.fence,
                [
                    k.outbox_items,
                    k.outbox_states,
                    k.sequence,
                    *(k.outbox_account(i.account_id) for i in (*new, *old)),
                ],
                [
                    len(new),
                    len(old),
                    *(part for i in new for part in (*_around_id(i), i.state)),
                    *(str(i.id) for i in old),
                ],
            )
        )
        return [dataclasses.replace(i, id=first + n) for n, i in enumerate(new)]

    def items(self, account_id: str) -> list[OutboxItem]:
        """See :meth:`OutboxStore.items`."""
        ids: list[str] = self._r.zrange(self._k.outbox_account(account_id), 0, -1)  # type: ignore[assignment]
        if not ids:
            return []
        pipe = self._r.pipeline(transaction=True)
        pipe.hmget(self._k.outbox_items, ids)
        pipe.hmget(self._k.outbox_states, ids)
        rows, states = pipe.execute()
        return [
            dataclasses.replace(item_from_json(r), state=state or "pending")
            for r, state in zip(rows, states, strict=True)
            if r is not None
        ]

    def set_state(self, item_id: int, state: OutboxState) -> None:
        """See :meth:`OutboxStore.set_state`."""
        self._set_state(
            self.fence, [self._k.outbox_items, self._k.outbox_states], [str(item_id), state]
        )

    def delete(self, item_id: int) -> bool:
        """See :meth:`OutboxStore.delete`."""
        done = self._delete(
            self.fence,
            [self._k.outbox_items, self._k.outbox_states],
            [str(item_id), self._k.outbox_account("")],
        )
        return bool(done)


# KEYS: the deliveries, the endpoint's sorted set. ARGV: now, the claim's end, the limit.
# The first `limit` due, by (score, id as a number: the set orders equal scores as text,
# "10" before "9"), each moved to the claim's end: no other caller gets it before then.
# An id with no delivery (deleted meanwhile) leaves the set.
_CLAIM_DUE: Final = """
local limit = tonumber(ARGV[3])
local first = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, limit)
if #first == 0 then return {} end
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', first[#first], 'WITHSCORES')
local order = {}
for i = 1, #due, 2 do
  order[#order + 1] = {tonumber(due[i + 1]), tonumber(due[i]), due[i]}
end
table.sort(order, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
local claimed = {}
for i = 1, math.min(limit, #order) do
  local id = order[i][3]
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    claimed[#claimed + 1] = raw
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return claimed
"""

# KEYS: the deliveries, the endpoint's sorted set. Every delivery of the endpoint, claimed
# or not, gone in one step (a gateway adding one meanwhile adds it after, or before).
_DELETE_ENDPOINT: Final = """
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
local gone = 0
for i = 1, #ids do
  gone = gone + redis.call('HDEL', KEYS[1], ids[i])
end
redis.call('DEL', KEYS[2])
return gone
"""


class RedisWebhookQueue:
    """:class:`~wechat_sdk.stores.base.WebhookQueue` in Redis (keys: ``webhooks:*``).

    Every gateway of a cluster delivers from it: :meth:`claim_due` is one Lua script
    (atomic), so each delivery is POSTed by the one gateway that claimed it.
    """

    def __init__(self, client: Redis, keys: Keys) -> None:
        self._r = client
        self._k = keys
        self._claim_due = client.register_script(_CLAIM_DUE)
        self._delete_endpoint = client.register_script(_DELETE_ENDPOINT)

    def add(self, deliveries: Sequence[WebhookDelivery]) -> list[WebhookDelivery]:
        """See :meth:`WebhookQueue.add` (one MULTI/EXEC)."""
        if not deliveries:
            return []
        ids = _ids(self._r, self._k, len(deliveries))
        added = [dataclasses.replace(d, id=i) for d, i in zip(deliveries, ids, strict=True)]
        pipe = self._r.pipeline(transaction=True)
        for d in added:
            pipe.hset(self._k.webhook_rows, str(d.id), webhook_to_json(d))
            pipe.zadd(self._k.webhook_due(d.endpoint), {str(d.id): d.next_attempt_at})
        pipe.execute()
        return added

    def _rows(self, ids: list[str]) -> list[WebhookDelivery]:
        if not ids:
            return []
        rows: list[str | None] = self._r.hmget(self._k.webhook_rows, ids)  # type: ignore[assignment]
        return [webhook_from_json(r) for r in rows if r is not None]

    def due(self, endpoint: str, now: float, limit: int = 100) -> list[WebhookDelivery]:
        """See :meth:`WebhookQueue.due`."""
        ids: list[str] = self._r.zrangebyscore(self._k.webhook_due(endpoint), "-inf", now)  # type: ignore[assignment]
        rows = self._rows(ids)
        return sorted(rows, key=lambda r: (r.next_attempt_at, r.id))[:limit]

    def claim_due(
        self, endpoint: str, now: float, *, hold_s: float, limit: int = 1
    ) -> list[WebhookDelivery]:
        """See :meth:`WebhookQueue.claim_due` (one script: one round trip, atomic). The
        claim is the delivery's place in ``webhooks:due:<endpoint>``, moved to ``now +
        hold_s``; its JSON (and :meth:`pending`) keeps its own ``next_attempt_at``."""
        raws: list[str] = self._claim_due(
            keys=[self._k.webhook_rows, self._k.webhook_due(endpoint)],
            args=[repr(now), repr(now + hold_s), limit],
        )
        return [webhook_from_json(raw) for raw in raws]

    def next_attempt_at(self, endpoint: str) -> float | None:
        """See :meth:`WebhookQueue.next_attempt_at`."""
        first: list[tuple[str, float]] = self._r.zrange(  # type: ignore[assignment]
            self._k.webhook_due(endpoint), 0, 0, withscores=True
        )
        return float(first[0][1]) if first else None

    def retry_later(
        self, delivery_id: int, *, attempts: int, next_attempt_at: float, last_error: str
    ) -> None:
        """See :meth:`WebhookQueue.retry_later`."""

        def change(pipe: Pipeline) -> None:
            raw = pipe.hget(self._k.webhook_rows, str(delivery_id))
            pipe.multi()
            if raw is None:
                return
            row = dataclasses.replace(
                webhook_from_json(raw),  # type: ignore[arg-type]
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                last_error=last_error,
            )
            pipe.hset(self._k.webhook_rows, str(delivery_id), webhook_to_json(row))
            pipe.zadd(self._k.webhook_due(row.endpoint), {str(delivery_id): next_attempt_at})

        transact(self._r, change, self._k.webhook_rows)

    def delete(self, delivery_id: int) -> bool:
        """See :meth:`WebhookQueue.delete`."""

        def change(pipe: Pipeline) -> bool:
            raw = pipe.hget(self._k.webhook_rows, str(delivery_id))
            pipe.multi()
            if raw is None:
                return False
            row = webhook_from_json(raw)  # type: ignore[arg-type]
            pipe.hdel(self._k.webhook_rows, str(delivery_id))
            pipe.zrem(self._k.webhook_due(row.endpoint), str(delivery_id))
            return True

        done: bool = transact(self._r, change, self._k.webhook_rows)
        return done

    def delete_endpoint(self, endpoint: str) -> int:
        """See :meth:`WebhookQueue.delete_endpoint` (one script: atomic, for every gateway)."""
        return int(
            self._delete_endpoint(keys=[self._k.webhook_rows, self._k.webhook_due(endpoint)])
        )

    def pending(self, endpoint: str | None = None) -> list[WebhookDelivery]:
        """See :meth:`WebhookQueue.pending`."""
        if endpoint is not None:
            ids: list[str] = self._r.zrange(self._k.webhook_due(endpoint), 0, -1)  # type: ignore[assignment]
            rows = self._rows(ids)
        else:
            values: list[str] = self._r.hvals(self._k.webhook_rows)  # type: ignore[assignment]
            rows = [webhook_from_json(v) for v in values]
        return sorted(rows, key=lambda r: r.id)

    def count(self, endpoint: str) -> int:
        """See :meth:`WebhookQueue.count` (the endpoint's sorted set: claimed ones keep
        their place in it)."""
        return int(self._r.zcard(self._k.webhook_due(endpoint)))  # type: ignore[arg-type]


# KEYS: the records, the keys by time. ARGV: the key, its record, when. A new key's record
# and its place in time, or the known key's record.
_CLAIM_KEY: Final = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  return false
end
return redis.call('HGET', KEYS[1], ARGV[1])
"""

# KEYS: the records, the keys by time. ARGV: the time. Forget the keys first used before
# it, in one step, reading only those (a key claimed again meanwhile is after it). Keys a
# gateway older than the time index wrote have a record only: a first purge indexes them.
_PURGE_KEYS: Final = """
if redis.call('HLEN', KEYS[1]) > redis.call('ZCARD', KEYS[2]) then
  local rows = redis.call('HGETALL', KEYS[1])
  for i = 1, #rows, 2 do
    redis.call('ZADD', KEYS[2], 'NX', cjson.decode(rows[i + 1])[2], rows[i])
  end
end
local before = '(' .. ARGV[1]
local keys = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', before)
local gone = 0
for i = 1, #keys do
  gone = gone + redis.call('HDEL', KEYS[1], keys[i])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', before)
return gone
"""


class RedisIdempotencyStore:
    """:class:`~wechat_sdk.stores.base.IdempotencyStore` in Redis: a hash of the records,
    and the keys in a sorted set by when first used, for the purge."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        self._r = client
        self._k = keys
        self._keys = [keys.idempotency, keys.idempotency_since]
        self._claim = client.register_script(_CLAIM_KEY)
        self._purge = client.register_script(_PURGE_KEYS)

    def claim(self, key: str, fingerprint: str, now: float) -> IdempotentRequest | None:
        """See :meth:`IdempotencyStore.claim` (one script: one claimant wins)."""
        fresh = idempotent_to_json(IdempotentRequest(key, fingerprint, now))
        raw = self._claim(keys=self._keys, args=[key, fresh, repr(now)])
        return None if raw is None else idempotent_from_json(key, raw)

    def finish(self, key: str, status: int, response: str) -> None:
        """See :meth:`IdempotencyStore.finish`."""

        def change(pipe: Pipeline) -> None:
            raw = pipe.hget(self._k.idempotency, key)
            pipe.multi()
            if raw is not None:
                done = dataclasses.replace(
                    idempotent_from_json(key, raw),  # type: ignore[arg-type]
                    status=status,
                    response=response,
                )
                pipe.hset(self._k.idempotency, key, idempotent_to_json(done))

        transact(self._r, change, self._k.idempotency)

    def release(self, key: str) -> None:
        """See :meth:`IdempotencyStore.release`."""
        pipe = self._r.pipeline(transaction=True)
        pipe.hdel(self._k.idempotency, key)
        pipe.zrem(self._k.idempotency_since, key)
        pipe.execute()

    def purge(self, before: float) -> int:
        """See :meth:`IdempotencyStore.purge` (one script: atomic; it reads only the keys
        it forgets)."""
        return int(self._purge(keys=self._keys, args=[repr(before)]))
