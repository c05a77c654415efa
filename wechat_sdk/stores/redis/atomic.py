"""One optimistic transaction (WATCH, read, MULTI, EXEC; retried when a watched key
changed meanwhile), typed: redis-py's own signature says its callable returns None."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

__all__ = ["transact"]

T = TypeVar("T")


def transact(client: Redis, change: Callable[[Pipeline], T], *watched: str) -> T:
    """Run ``change`` in a transaction watching ``watched``; what ``change`` returned."""
    run = cast(Callable[..., Any], client.transaction)
    return cast(T, run(change, *watched, value_from_callable=True))
