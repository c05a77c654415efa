"""The Redis store bundle: one connection pool, the stores, their keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wechat_sdk.config.store import shown_url
from wechat_sdk.stores.base import CHANNEL, DEFAULT_DEDUPE_MAX_ENTRIES, DEFAULT_MAX_CONVERSATIONS
from wechat_sdk.stores.redis.fencing import Fence, WriteScript
from wechat_sdk.stores.redis.history import RedisDedupeStore, RedisHistoryStore
from wechat_sdk.stores.redis.keys import DEFAULT_NAMESPACE, Keys
from wechat_sdk.stores.redis.pairing import RedisPairingStore
from wechat_sdk.stores.redis.queues import (
    RedisIdempotencyStore,
    RedisOutboxStore,
    RedisWebhookQueue,
)

if TYPE_CHECKING:
    from redis import Redis

__all__ = [
    "FencedRedisStore",
    "RedisStore",
    "RedisUnavailable",
    "client_options",
    "connect",
    "unreachable",
]

#: seconds a connection or a command may take before the store says Redis is unreachable
SOCKET_TIMEOUT_S = 5.0

# KEYS: the account's serving-since. ARGV: the time. An earlier one stays.
_KEEP_SERVING_SINCE = """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return 0
"""


class RedisUnavailable(ConnectionError):
    """The Redis server cannot be reached (its URL shown without the password)."""


def client_options(timeout_s: float) -> dict[str, Any]:
    """How every Redis client of the gateway is made: text in and out, and text UTF-8
    cannot encode (half an emoji from a cut JSON escape) stored with "?" in its place,
    as the SQLite store keeps it, rather than refused (a message never answered)."""
    return {
        "decode_responses": True,
        "encoding_errors": "replace",
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
    }


def connect(url: str, *, timeout_s: float = SOCKET_TIMEOUT_S) -> Redis:
    """A client for ``url`` that answered a PING, or :class:`RedisUnavailable` saying
    what to check. redis-py is imported here, when a Redis store is first asked for."""
    import redis

    client = redis.Redis.from_url(url, **client_options(timeout_s))
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise unreachable(url, exc) from None
    return client


def unreachable(url: str, exc: BaseException) -> RedisUnavailable:
    """The error saying Redis at ``url`` cannot be reached, and what to check; or, when it
    answered with an error (full, a command refused), that error and what to change."""
    from redis.exceptions import OutOfMemoryError, ResponseError

    if isinstance(exc, OutOfMemoryError):
        return RedisUnavailable(
            f"Redis is full (maxmemory): the server at {shown_url(url)} refuses writes: "
            f"{unreachable_reason(exc)} (raise maxmemory in its config, or give it more "
            "memory; keep maxmemory-policy noeviction: docs/cluster.md)"
        )
    if isinstance(exc, ResponseError):
        return RedisUnavailable(
            f"the Redis server at {shown_url(url)} refused a command: "
            f"{unreachable_reason(exc)} (check the Redis user's ACL permissions and the "
            "server's version)"
        )
    return RedisUnavailable(
        f"cannot reach the Redis server at {shown_url(url)}: {unreachable_reason(exc)} "
        "(check channels.wechat.store.url, and that redis-server runs and is reachable "
        "from here)"
    )


def unreachable_reason(exc: BaseException) -> str:
    """Why a Redis call failed, in a few words, without anything of the URL."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


class RedisStore:
    """The Redis :class:`~wechat_sdk.stores.base.Store` bundle, shared by several gateways.

    ``url`` is a redis-py URL (``redis://[:password@]host:port/db``, ``rediss://``,
    ``unix://``); every key starts with ``<namespace>:<channel>:`` (see
    :mod:`wechat_sdk.stores.redis.keys` and docs/cluster.md). The store talks to Redis
    with redis-py's synchronous client, as the Store port's methods are synchronous: each
    call is one round trip (a Lua script or a MULTI/EXEC where it must be atomic), which
    on a Redis in the same network is a fraction of a millisecond of the event loop.

    Every write is acknowledged by Redis before the call returns; how durable that is
    is Redis's persistence setting (``appendonly yes``, ``appendfsync always`` keeps every
    acknowledged write across a power loss: docs/cluster.md), so :meth:`marks_durable`
    has nothing more to wait for.

    Example:
        ```python
        with RedisStore("redis://localhost:6379/0") as store:
            print(store.pairing.list_requests())
        ```
    """

    def __init__(
        self,
        url: str,
        *,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        dedupe_max_entries: int = DEFAULT_DEDUPE_MAX_ENTRIES,
        channel: str = CHANNEL,
        namespace: str = DEFAULT_NAMESPACE,
        client: Redis | None = None,
    ) -> None:
        self.url = url
        self.channel = channel
        self.keys = Keys(channel, namespace)
        self.client = client if client is not None else connect(url)
        self.pairing = RedisPairingStore(self.client, self.keys)
        self.history = RedisHistoryStore(self.client, self.keys, max_conversations)
        self.dedupe = RedisDedupeStore(self.client, self.keys, dedupe_max_entries)
        self.outbox = RedisOutboxStore(self.client, self.keys)
        self.webhooks = RedisWebhookQueue(self.client, self.keys)
        self.idempotency = RedisIdempotencyStore(self.client, self.keys)
        self._keep_since = WriteScript(self.client, _KEEP_SERVING_SINCE, "first login write")
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisStore({shown_url(self.url)!r}, prefix={self.keys.prefix!r})"

    def serving_since(self, account_id: str) -> float | None:
        """When a gateway of the cluster first served the account (its first login), if
        one did: shared, so that the gateway taking the account over does not take the
        messages said while it moved for history replayed at login."""
        value = self.client.get(self.keys.serving_since(account_id))
        return None if value is None else float(str(value))

    def keep_serving_since(self, account_id: str, at: float, fence: Fence | None = None) -> None:
        """Record the account's first login (an earlier one stays); with ``fence``, only
        while Redis holds its lease."""
        self._keep_since(fence, [self.keys.serving_since(account_id)], [repr(at)])

    def fenced(self, fence: Fence) -> FencedRedisStore:
        """The store as the holder of one account's lease writes it: see
        :class:`FencedRedisStore`."""
        return FencedRedisStore(self, fence)

    def mark_position(self) -> int:
        """See :meth:`Store.mark_position`: the marks this process recorded so far."""
        return self.dedupe.recorded

    async def marks_durable(self, upto: int | None) -> None:
        """See :meth:`Store.marks_durable`: each mark was acknowledged by Redis when it
        was recorded; nothing more to wait for (durability is Redis's setting)."""

    def close(self) -> None:
        """Close the connections (idempotent)."""
        if not self._closed:
            self._closed = True
            self.client.close()

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FencedRedisStore:
    """The Redis store as the gateway holding one account's lease uses it: every write
    made for the account (its history, dedupe marks, outbox, first login) is one Lua
    script that Redis runs only while the account's lease key still holds this gateway's
    lease (:mod:`~wechat_sdk.stores.redis.fencing`), else refused with
    :class:`~wechat_sdk.stores.redis.fencing.LeaseLost` and nothing written. Reads and
    the stores not kept per account (pairing, webhooks, idempotency) are the store's.

    A view: it shares the store's connections, and :meth:`close` leaves them open.

    Example:
        ```python
        held = store.fenced(Fence("support1", lease_key, "gw-a 7"))
        held.outbox.add(items)   # LeaseLost once another gateway took support1 over
        ```
    """

    def __init__(self, store: RedisStore, fence: Fence) -> None:
        self.store = store
        self.fence = fence
        self.pairing = store.pairing
        self.history = store.history.fenced(fence)
        self.dedupe = store.dedupe.fenced(fence)
        self.outbox = store.outbox.fenced(fence)
        self.webhooks = store.webhooks
        self.idempotency = store.idempotency

    def __repr__(self) -> str:
        return f"FencedRedisStore({self.store!r}, account={self.fence.account_id!r})"

    def serving_since(self, account_id: str) -> float | None:
        """See :meth:`RedisStore.serving_since`."""
        return self.store.serving_since(account_id)

    def keep_serving_since(self, account_id: str, at: float) -> None:
        """See :meth:`RedisStore.keep_serving_since` (fenced)."""
        self.store.keep_serving_since(account_id, at, self.fence)

    def mark_position(self) -> int:
        """See :meth:`Store.mark_position`: the marks recorded through this view."""
        return self.dedupe.recorded

    async def marks_durable(self, upto: int | None) -> None:
        """See :meth:`RedisStore.marks_durable`: nothing to wait for."""

    def close(self) -> None:
        """Nothing: the connections are the store's (closed with it)."""
