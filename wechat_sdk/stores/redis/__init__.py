"""The Redis store: what a gateway keeps, shared by several gateways (docs/cluster.md).

redis-py is imported only when a :class:`RedisStore` connects. The key layout is in
:mod:`wechat_sdk.stores.redis.keys`.
"""

from __future__ import annotations

from wechat_sdk.stores.redis.keys import DEFAULT_NAMESPACE, Keys
from wechat_sdk.stores.redis.store import RedisStore, RedisUnavailable, connect

__all__ = ["DEFAULT_NAMESPACE", "Keys", "RedisStore", "RedisUnavailable", "connect"]
