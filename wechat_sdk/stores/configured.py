"""The store a config names (``channels.wechat.store``), opened: one rule for the gateway
and the CLI; and what a failure of it says."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from wechat_sdk.clock import Clock
from wechat_sdk.stores.base import Store

if TYPE_CHECKING:
    from wechat_sdk.config.models import WechatConfig

__all__ = ["open_store", "store_failure"]


def open_store(wechat: WechatConfig, state_dir: Path, clock: Clock | None = None) -> Store:
    """The configured store: SQLite in ``state_dir`` (the default), memory, or Redis.

    Raises :class:`~wechat_sdk.stores.redis.RedisUnavailable` when a Redis store cannot
    reach its server (the message names the URL without its password).
    """
    kind = wechat.store.kind
    if kind == "memory":
        from wechat_sdk.stores.memory import MemoryStore

        return MemoryStore()
    if kind == "redis":
        from wechat_sdk.stores.redis import RedisStore

        assert wechat.store.url is not None  # (the config refuses kind redis without one)
        return RedisStore(wechat.store.url, namespace=wechat.store.namespace)
    from wechat_sdk.stores.sqlite import SqliteStore

    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return SqliteStore.in_state_dir(
        state_dir, clock=clock, history_cache_conversations=wechat.historyCacheConversations
    )


#: what SQLite says when the database failed (locked by another process, its disk full or
#: failing, its file gone or not writable), not a statement's own error ("no such table":
#: a bug, reported as one)
_SQLITE_FAILED = re.compile(
    r"locked|busy|disk|full|I/O|readonly|read-only|unable to open|not a database|malformed",
    re.IGNORECASE,
)


def store_failure(exc: BaseException, url: str | None) -> str | None:
    """What ``exc``, raised by a store call, says when the store itself failed (Redis
    unreachable, full or refusing a command; SQLite locked, or its disk full or failing),
    in words naming what to check; None for any other error (a bug). ``url`` is the Redis
    store's (``channels.wechat.store.url``), shown without its password."""
    from redis.exceptions import RedisError  # (on an error's path only)

    from wechat_sdk.stores.redis.store import RedisUnavailable, unreachable, unreachable_reason

    if isinstance(exc, RedisUnavailable):
        return str(exc)
    if isinstance(exc, RedisError):
        if url is None:  # (a store the gateway was given, not the config's)
            return f"the Redis store failed: {unreachable_reason(exc)}"
        return str(unreachable(url, exc))
    if isinstance(exc, sqlite3.OperationalError) and _SQLITE_FAILED.search(str(exc)):
        return (
            f"the SQLite store could not be read or written: {exc} (check the state "
            "directory's disk: its free space and permissions)"
        )
    return None
