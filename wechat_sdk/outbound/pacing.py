"""Pacing (anti-ban): a per-account token bucket shared fairly by conversations.

Senders wait their turn per conversation; turns are granted round-robin across the
conversations that are waiting, so one chatty group cannot starve a DM. Time is read
only through the clock port; jitter comes from the RNG it is given (seeded in tests).
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict, deque

from wechat_sdk.clock import Clock

__all__ = ["Pacer"]


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
        return sum(len(q) for q in self._waiting.values())

    async def turn(self, conversation_id: str) -> None:
        """Wait until this conversation may send one message."""
        if self.per_second is None:
            self.granted += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(conversation_id, deque()).append(fut)
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())
        try:
            await fut
        except asyncio.CancelledError:
            queue = self._waiting.get(conversation_id)
            if queue is not None and fut in queue:
                queue.remove(fut)
                if not queue:
                    del self._waiting[conversation_id]
            raise

    def _refill(self) -> None:
        now = self.clock.now()
        assert self.per_second is not None
        self._tokens = min(float(self.burst),
                           self._tokens + (now - self._stamp) * self.per_second)
        self._stamp = now

    async def _dispatch(self) -> None:
        assert self.per_second is not None
        while self._waiting:
            self._refill()
            if self._tokens < 1.0:
                await self.clock.sleep((1.0 - self._tokens) / self.per_second)
                continue
            if self.jitter_s > 0:
                await self.clock.sleep(self.rng.uniform(0.0, self.jitter_s))
                self._refill()
            # round robin: the conversation at the front gets one turn, then goes last
            conversation_id, queue = next(iter(self._waiting.items()))
            fut = queue.popleft()
            if queue:
                self._waiting.move_to_end(conversation_id)
            else:
                del self._waiting[conversation_id]
            if fut.done():  # cancelled while waiting
                continue
            self._tokens -= 1.0
            self.granted += 1
            fut.set_result(None)
