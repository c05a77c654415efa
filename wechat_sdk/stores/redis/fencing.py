"""The fence on every write for an account held by lease: the one home of the rule.

A gateway running an account by lease (docs/cluster.md) writes its history, dedupe marks,
outbox and transport state only while Redis still holds its lease. The check is made in
the same atomic step as the write, by Redis: each write is a Lua script, and its fenced
form starts with :data:`FENCE_LUA`, which compares the account's lease key
(``<namespace>:<channel>:lease:<account>``) with this gateway's value
(``<gateway id> <fencing token>``) and refuses the whole script before it changes
anything. A paused old holder that wakes up after another gateway took the account
over writes nothing, even if its own clock still believes the lease valid; the cost is
one GET inside a script the write runs anyway (one round trip, as before).

Unfenced (no lease: a single gateway, the CLI), the same script runs without the check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from wechat_sdk.stores.base import LeaseLost

__all__ = ["FENCE_LUA", "AsyncWriteScript", "Fence", "LeaseLost", "WriteScript"]

#: the error a fenced script answers with when the lease is not ours
_REFUSED: Final = "LEASE_LOST"

#: the fence, put before a write script's body: the lease key is the script's last key,
#: this gateway's lease value its last argument (a body never counts ``#KEYS``/``#ARGV``)
FENCE_LUA: Final = f"""
if redis.call('GET', KEYS[#KEYS]) ~= ARGV[#ARGV] then
  return redis.error_reply('{_REFUSED} the account is held by another lease')
end
"""


@dataclass(frozen=True, slots=True)
class Fence:
    """One held lease, as a write checks it: the account's lease key and the value it
    holds while this gateway holds the lease. ``on_lost`` is told when Redis refused a
    write (the account then stops here); ``on_failed`` when a write failed because Redis
    could not be reached or was full (what the account's work could not write then is
    taken up once Redis answers again: docs/cluster.md)."""

    account_id: str
    key: str
    value: str
    on_lost: Callable[[], None] | None = field(default=None, compare=False, repr=False)
    on_failed: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    def refused(self, what: str = "write") -> LeaseLost:
        """Redis refused a write: tell ``on_lost``; the error to raise."""
        if self.on_lost is not None:
            self.on_lost()
        return LeaseLost(self.account_id, what)

    def failed(self, exc: BaseException) -> None:
        """A write raised ``exc``: tell ``on_failed`` when it says Redis was out of reach
        or full (not a refusal, nor a fault of the write's own)."""
        if self.on_failed is not None and _outage(exc):
            self.on_failed()

    def broke_turn(self, exc: BaseException) -> None:
        """A turn failed on ``exc``: as :meth:`failed`, when it is Redis's own error (a
        read's: a turn may break on one without a failed write). Any other (the agent's
        timeout, a local file's error) is no outage of Redis."""
        from redis.exceptions import RedisError

        if isinstance(exc, RedisError):
            self.failed(exc)


def _outage(exc: BaseException) -> bool:
    """Redis could not be reached, did not answer in time, is full, or takes no writes for
    a moment (a replica: a managed failover demotes the old primary)."""
    from redis.exceptions import ConnectionError, OutOfMemoryError, ReadOnlyError, TimeoutError

    outages = ConnectionError | TimeoutError | OutOfMemoryError | ReadOnlyError | OSError
    return isinstance(exc, outages)


def _is_refusal(exc: BaseException) -> bool:
    from redis.exceptions import ResponseError

    return isinstance(exc, ResponseError) and str(exc).startswith(_REFUSED)


class WriteScript:
    """A write as one Lua script (one round trip, atomic), run plain or fenced
    (redis-py's synchronous client)."""

    def __init__(self, client: Any, body: str, what: str = "write") -> None:
        self.what = what
        self._plain = client.register_script(body)
        self._fenced = client.register_script(FENCE_LUA + body)

    def __call__(
        self, fence: Fence | None, keys: Sequence[str], args: Sequence[str | int | float]
    ) -> Any:
        """Run it; with ``fence``, only while Redis holds the fence's lease, else
        :class:`LeaseLost` (nothing written)."""
        if fence is None:
            return self._plain(keys=list(keys), args=list(args))
        try:
            return self._fenced(keys=[*keys, fence.key], args=[*args, fence.value])
        except Exception as exc:
            if _is_refusal(exc):
                raise fence.refused(self.what) from None
            fence.failed(exc)
            raise


class AsyncWriteScript:
    """:class:`WriteScript` on ``redis.asyncio``'s client."""

    def __init__(self, client: Any, body: str, what: str = "write") -> None:
        self.what = what
        self._plain = client.register_script(body)
        self._fenced = client.register_script(FENCE_LUA + body)

    async def __call__(
        self, fence: Fence | None, keys: Sequence[str], args: Sequence[str | int | float]
    ) -> Any:
        """See :meth:`WriteScript.__call__`."""
        if fence is None:
            return await self._plain(keys=list(keys), args=list(args))
        try:
            return await self._fenced(keys=[*keys, fence.key], args=[*args, fence.value])
        except Exception as exc:
            if _is_refusal(exc):
                raise fence.refused(self.what) from None
            fence.failed(exc)
            raise
