"""An asyncio event loop that says when it has nothing left to do right now.

:meth:`VirtualClock.settle <wechat_sdk.clock.VirtualClock.settle>` needs to know when
every piece of immediately-ready work has run, so the next virtual sleeper wakes only
then. asyncio has no public "is the loop idle" question, but it has a public seam that
answers it: a :class:`~asyncio.SelectorEventLoop` takes its selector, and asks that
selector to ``select(0)`` while callbacks are ready (or a timer is due), and to wait
(a positive timeout, or None) only when it has nothing to run. :class:`IdleAwareEventLoop`
wraps the system's selector to see that moment::

    with asyncio.Runner(loop_factory=wechat_sdk.idle_loop.new_event_loop) as runner:
        runner.run(main())

The simulator's entry points (``wechat-sdk simulate``, ``demo``, the benchmarks) and its
pytest plugin run on this loop. On another loop the virtual clock still works, settling by
a bounded number of yields (see ``VirtualClock.settle``).
"""

from __future__ import annotations

import asyncio
import selectors
import sys
from typing import Any

__all__ = ["IdleAwareEventLoop", "new_event_loop"]


class _IdleSignalSelector(selectors.BaseSelector):
    """The system's selector, plus futures resolved when the loop is about to wait."""

    def __init__(self) -> None:
        self._system = selectors.DefaultSelector()
        self._waiters: list[asyncio.Future[None]] = []
        #: futures another thread will settle (see IdleAwareEventLoop.count_as_work)
        self.work: set[asyncio.Future[Any]] = set()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        # timeout 0: the loop has callbacks ready or a timer due; not idle. Work in a
        # thread: wait for it (its outcome wakes the loop) or for the next timer
        if timeout == 0 or not self._waiters or self.work:
            return self._system.select(timeout)
        events = self._system.select(0)
        if events:  # I/O has arrived (a loopback reply, say): its callbacks run first
            return events
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)  # scheduled now: the loop runs it before waiting
        return []

    def add_waiter(self, waiter: asyncio.Future[None]) -> None:
        self._waiters.append(waiter)

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._system.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._system.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._system.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._system.get_key(fileobj)

    def get_map(self) -> Any:
        return self._system.get_map()

    def close(self) -> None:
        self._waiters.clear()  # (the loop is closed: their tasks can run no more)
        self.work.clear()
        self._system.close()


class IdleAwareEventLoop(asyncio.SelectorEventLoop):
    """asyncio's selector event loop, able to wait until it has nothing ready to run."""

    def __init__(self) -> None:
        self._idle_signal = _IdleSignalSelector()
        super().__init__(self._idle_signal)

    async def wait_idle(self) -> None:
        """Return once no callback is ready, no timer is due and no I/O is waiting.

        Everything that can run without time passing (on the virtual clock, or real
        timers further away) has run by then; work that waits for a thread (but one
        counted with :meth:`count_as_work`), or for another process to answer, is not
        seen. A task that never stops yielding
        (``while True: await asyncio.sleep(0)``) keeps the loop from ever being idle.
        """
        waiter: asyncio.Future[None] = self.create_future()
        self._idle_signal.add_waiter(waiter)
        await waiter

    def count_as_work(self, outcome: asyncio.Future[Any]) -> None:
        """Count ``outcome``, a future another thread settles (through
        ``call_soon_threadsafe``), as work in flight until it is done (or cancelled: given
        up): the loop is not idle meanwhile, so virtual time does not move on while a
        thread works for a task (a sync tool, :mod:`wechat_sdk.tool_calls`)."""
        work = self._idle_signal.work
        work.add(outcome)
        outcome.add_done_callback(work.discard)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new :class:`IdleAwareEventLoop`; on Windows, asyncio's own loop.

    asyncio's loop on Windows is the proactor, which has no selector (and is the one that
    runs subprocesses, which MCP tool servers over stdio need); there the virtual clock
    settles by its fallback.
    """
    if sys.platform == "win32":
        return asyncio.new_event_loop()
    return IdleAwareEventLoop()
