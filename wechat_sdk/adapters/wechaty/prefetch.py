"""Events held back until their payload is in, then handed over in the order they came.

The gateway takes events one at a time and asks for each message's payload as it comes to
it. Fetched only then, every message would wait a full round trip behind the one before.
So the client starts each payload call as the event is read, and this window gives the
event to the gateway once that call has ended (answered or failed):

- **bounded**: at most ``size`` events are between the stream and the gateway; reading
  the stream waits for room, so a backlog stays in gRPC, not in memory;
- **in order**: an event waits for the one before it to be handed over, but at most
  ``patience_s``: an unanswered payload holds the ones behind it that long, not until its
  call times out (the other conversations keep flowing meanwhile).

>>> async def demo() -> list[str]:
...     out: asyncio.Queue[str] = asyncio.Queue()
...     window = PrefetchWindow(out, size=8, patience_s=1.0)
...     await window.add("first", lambda: asyncio.ensure_future(asyncio.sleep(0.05)))
...     await window.add("second")
...     await window.drain()
...     return [out.get_nowait(), out.get_nowait()]
>>> asyncio.run(demo())
['first', 'second']
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["PrefetchWindow"]

T = TypeVar("T")


class PrefetchWindow(Generic[T]):
    """Items handed to ``out`` in the order added, each once its fetch is done."""

    def __init__(self, out: asyncio.Queue[T], *, size: int, patience_s: float) -> None:
        if size < 1:
            raise ValueError("the prefetch window needs room for at least one event")
        self.out = out
        self.patience_s = patience_s
        self._room = asyncio.Semaphore(size)
        #: the items not handed over yet, by the task that will, in the order added
        self._pending: dict[asyncio.Task[None], T] = {}
        self._last: asyncio.Task[None] | None = None
        #: items not handed over yet that a later one overtook (its patience ran out)
        self._overtaken: set[asyncio.Task[None]] = set()

    async def add(
        self, item: T, fetch: Callable[[], asyncio.Future[Any] | None] | None = None
    ) -> None:
        """Wait for room in the window, then call ``fetch`` (it starts the fetch and gives
        its future, or None); ``item`` is handed over once that future is done (its
        result is the caller's business) and the item before it is handed over."""
        await self._room.acquire()
        fetching = fetch() if fetch is not None else None
        task = asyncio.get_running_loop().create_task(self._hand_over(item, fetching, self._last))
        self._pending[task] = item
        self._last = task

    def overtaken(self) -> int:
        """Items still held (their fetch not done) that later ones were handed over
        before: the gateway has seen events that came after them."""
        return len(self._overtaken)

    async def drain(self) -> None:
        """Wait until every item added is handed over."""
        while self._pending:
            await asyncio.wait(list(self._pending))

    async def close(self) -> None:
        """Hand every item over now, in order, fetched or not (the client is stopping)."""
        pending = list(self._pending.items())
        self._pending.clear()
        self._overtaken.clear()
        for task, _item in pending:
            task.cancel()
        if pending:
            await asyncio.wait([task for task, _item in pending])
        for _task, item in pending:
            self.out.put_nowait(item)

    async def _hand_over(
        self, item: T, fetch: asyncio.Future[Any] | None, before: asyncio.Task[None] | None
    ) -> None:
        # (asyncio.wait, not await: a handover cancelled by close() leaves the fetch running)
        if fetch is not None and not fetch.done():
            await asyncio.wait([fetch])
        task = asyncio.current_task()
        if before is not None and not before.done():
            await asyncio.wait([before], timeout=self.patience_s)
            if not before.done():  # this one goes first: every item before it is overtaken
                for earlier in self._pending:
                    if earlier is task:
                        break
                    self._overtaken.add(earlier)
        self.out.put_nowait(item)
        self._room.release()
        if task is not None:
            self._pending.pop(task, None)
            self._overtaken.discard(task)
