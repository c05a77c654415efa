"""The Clock port: the only way the core reads time, waits, or waits for the disk.

Two implementations: :class:`RealClock` (wall time, ``asyncio.sleep``, blocking calls in
a worker thread) and :class:`VirtualClock` (time moves only when the owner advances it;
used by the simulator so whole conversations run in milliseconds of real time).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Protocol, TypeVar, runtime_checkable

from wechat_sdk.idle_loop import IdleAwareEventLoop

__all__ = ["BACKGROUND", "SETTLE_YIELDS", "Clock", "RealClock", "VirtualClock"]

#: Set to True inside long-lived housekeeping tasks (watchdogs, pruning). Their sleeps
#: never count as "pending work" for :meth:`VirtualClock.run_until_idle`.
BACKGROUND: ContextVar[bool] = ContextVar("wechat_sdk_clock_background", default=False)

#: How many times :meth:`VirtualClock.settle` yields on an event loop that cannot say when
#: it is idle (one that is not an :class:`~wechat_sdk.idle_loop.IdleAwareEventLoop`).
SETTLE_YIELDS = 50

T = TypeVar("T")


@runtime_checkable
class Clock(Protocol):
    """Now and sleep. Nothing in the core calls ``time`` or ``asyncio.sleep`` directly."""

    def now(self) -> float:
        """Seconds since the epoch (virtual or real)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...

    async def run_blocking(self, fn: Callable[[], T]) -> T:
        """Run ``fn``, a blocking call (an fsync), and return its result.

        Where this clock's world can see the wait: the real clock runs it in a worker
        thread (the event loop goes on meanwhile); the virtual clock runs it inline, since
        virtual time cannot see a thread's work (the world would move on while it runs).
        """
        ...


class RealClock:
    """Wall-clock time."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def run_blocking(self, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(fn)


class VirtualClock:
    """Time that moves only when :meth:`advance` or :meth:`run_until_idle` moves it.

    Sleepers are woken in order of their wake time (ties in order of arrival), and
    the event loop is allowed to settle between wake-ups, so a chain of sleeps
    behaves exactly as it would in real time, only faster.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._background: set[asyncio.Future[None]] = set()
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        if BACKGROUND.get():
            self._background.add(fut)
        try:
            await fut
        finally:
            self._background.discard(fut)
            if not fut.done():
                fut.cancel()

    async def run_blocking(self, fn: Callable[[], T]) -> T:
        return fn()  # inline: no thread's work the world cannot see

    @property
    def pending(self) -> int:
        """Number of live sleepers."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_wake(self) -> float | None:
        """Virtual time of the earliest live sleeper, if any."""
        self._drop_dead()
        return self._sleepers[0][0] if self._sleepers else None

    def next_work(self) -> float | None:
        """Virtual time of the earliest live sleeper that is not background housekeeping."""
        live = [w for w, _, f in self._sleepers if not f.done() and f not in self._background]
        return min(live) if live else None

    def _drop_dead(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)

    async def settle(self) -> None:
        """Let every ready task run until the loop has nothing left to do right now.

        Exact on an :class:`~wechat_sdk.idle_loop.IdleAwareEventLoop` (what the simulator's
        entry points and pytest plugin run on): it returns when no callback is ready, no
        timer is due and no I/O is waiting. On any other event loop it yields
        :data:`SETTLE_YIELDS` times: enough for the short chains of hand-offs usual between
        two sleeps, but a longer chain of work can still be running afterwards.
        """
        loop = asyncio.get_running_loop()
        if isinstance(loop, IdleAwareEventLoop):
            await loop.wait_idle()
            return
        for _ in range(SETTLE_YIELDS):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper due on the way."""
        await self.run_until(self._now + seconds)

    async def run_until(self, target: float) -> None:
        await self.settle()
        while True:
            wake = self.next_wake()
            if wake is None or wake > target:
                break
            self._wake_next()
            await self.settle()
        self._now = max(self._now, target)
        await self.settle()

    async def run_until_idle(self, limit: float = 86_400.0) -> None:
        """Run until no foreground sleeper is due within ``limit`` seconds from now.

        Background sleepers (see :data:`BACKGROUND`) are woken on the way when they
        fall due, but never keep the world busy on their own.
        """
        horizon = self._now + limit
        await self.settle()
        while True:
            work = self.next_work()
            if work is None or work > horizon:
                break
            await self.run_until(work)

    def _wake_next(self) -> None:
        when, _, fut = heapq.heappop(self._sleepers)
        self._now = max(self._now, when)
        if not fut.done():
            fut.set_result(None)
