"""Pacing (anti-ban): a per-account token bucket shared fairly by conversations.

Senders wait their turn per conversation; turns are granted round-robin across the
conversations that are waiting, so one chatty group cannot starve a DM. Time is read
only through the clock port; jitter comes from the RNG it is given (seeded in tests).

The guarantee: in any window of ``W`` seconds at most ``burst + per_second * W`` turns
are granted (jitter only ever delays a turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import OrderedDict, deque

from wechat_sdk.clock import BACKGROUND, Clock

__all__ = ["Pacer"]

# Float slack: virtual time cannot move by less than its resolution, so "almost one
# token" must count as one token or the dispatcher would sleep for nothing forever.
_EPS = 1e-6
_MIN_SLEEP_S = 1e-3


class Pacer:
    """Token bucket: ``per_second`` tokens a second, at most ``burst`` saved up.

    ``per_second=None`` turns pacing off (turns are granted at once, in order).
    """

    def __init__(
        self,
        clock: Clock,
        *,
        per_second: float | None = 1.0,
        burst: int = 5,
        jitter_s: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        if per_second is not None and per_second <= 0:
            raise ValueError(f"per_second must be positive (or None: no pacing), got {per_second}")
        self.clock = clock
        self.per_second = per_second
        self.burst = max(1, burst)
        self.jitter_s = max(0.0, jitter_s)
        self.rng = rng or random.Random()
        self._tokens = float(self.burst)
        self._stamp = clock.now()
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._dispatcher: asyncio.Task[None] | None = None
        self.granted = 0

    @property
    def queue_depth(self) -> int:
        """Sends waiting for their turn."""
        return sum(1 for q in self._waiting.values() for f in q if not f.done())

    async def turn(self, conversation_id: str) -> None:
        """Wait until this conversation may send one message.

        Cancelling the wait gives the place up; a turn granted to a waiter that was
        cancelled before it could use it is handed back to the bucket.
        """
        if self.per_second is None:
            self.granted += 1
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiting.setdefault(conversation_id, deque()).append(fut)
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = loop.create_task(self._dispatch(), name="pacer")
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._refund()
            else:
                self._forget(conversation_id, fut)
            raise

    def _forget(self, conversation_id: str, fut: asyncio.Future[None]) -> None:
        queue = self._waiting.get(conversation_id)
        if queue is not None and fut in queue:
            queue.remove(fut)
            if not queue:
                del self._waiting[conversation_id]

    def _refund(self) -> None:
        self._refill()
        self._tokens = min(float(self.burst), self._tokens + 1.0)
        self.granted -= 1

    def _refill(self) -> None:
        assert self.per_second is not None
        now = self.clock.now()
        if now > self._stamp:
            self._tokens = min(
                float(self.burst), self._tokens + (now - self._stamp) * self.per_second
            )
        self._stamp = max(self._stamp, now)

    def _next_waiter(self) -> asyncio.Future[None] | None:
        """Pop the next live waiter, round robin: its conversation then goes last."""
        while self._waiting:
            conversation_id, queue = next(iter(self._waiting.items()))
            fut = queue.popleft()
            if queue:
                self._waiting.move_to_end(conversation_id)
            else:
                del self._waiting[conversation_id]
            if not fut.done():
                return fut
        return None

    def _has_live_waiter(self) -> bool:
        return any(not f.done() for q in self._waiting.values() for f in q)

    async def _dispatch(self) -> None:
        assert self.per_second is not None
        BACKGROUND.set(False)  # pacing sleeps are real pending work
        try:
            while self._has_live_waiter():
                self._refill()
                if self._tokens < 1.0 - _EPS:
                    wait = (1.0 - self._tokens) / self.per_second
                    await self.clock.sleep(max(wait, _MIN_SLEEP_S))
                    continue
                if self.jitter_s > 0:
                    await self.clock.sleep(self.rng.uniform(0.0, self.jitter_s))
                    self._refill()  # tokens only grow while sleeping: still at least one
                fut = self._next_waiter()
                if fut is None:
                    break
                self._tokens = max(0.0, self._tokens - 1.0)
                self.granted += 1
                fut.set_result(None)
        finally:
            # If the dispatcher itself dies, nobody may stay waiting forever.
            if self._waiting and asyncio.current_task() is self._dispatcher:
                leftover = [f for q in self._waiting.values() for f in q]
                self._waiting.clear()
                for f in leftover:
                    with contextlib.suppress(asyncio.InvalidStateError):
                        f.cancel()
