"""The store a config names (``channels.wechat.store``), opened: one rule for the gateway
and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from wechat_sdk.clock import Clock
from wechat_sdk.stores.base import Store

if TYPE_CHECKING:
    from wechat_sdk.config.models import WechatConfig

__all__ = ["open_store"]


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
