"""A time budget spent only while waiting on the server: a request's (``agent.timeout``),
and a whole turn's (``agent.turnTimeout``), which each of its requests and tool calls
takes from too.

httpx's timeout bounds each read, so a server sending keep-alive comments, or a token now
and then, would hold a turn forever. A deadline fixed when the request starts would count
the gateway's own time too: between two reads of a streamed answer the gateway sends the
blocks it has (with pacing), and a long answer the model gave in time would fail. So each
wait on the server (the request, each piece of its answer) takes from one budget.

>>> import asyncio
>>> async def main() -> float:
...     budget = TimeBudget(5.0)
...     await budget.wait(asyncio.sleep(0))
...     return budget.left
>>> 4.9 < asyncio.run(main()) <= 5.0
True

A budget ``within`` another (a request's within its turn's) ends each wait at whichever
runs out first, and spends from both; ``expired`` makes the error a budget raises when it
is the one that ran out (a plain ``TimeoutError`` otherwise):

>>> async def turn() -> str:
...     whole = TimeBudget(0.01, expired=lambda: LookupError("the turn's time is up"))
...     request = TimeBudget(5.0, within=whole)
...     try:
...         await request.wait(asyncio.sleep(1))
...     except LookupError as exc:
...         return str(exc)
...     return "in time"
>>> asyncio.run(turn())
"the turn's time is up"
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["TimeBudget"]

T = TypeVar("T")


class TimeBudget:
    """``seconds`` of waiting in all; :meth:`wait` raises ``TimeoutError`` past them (or
    ``expired()``, when given). ``within``: a budget this one is part of."""

    def __init__(
        self,
        seconds: float,
        *,
        within: TimeBudget | None = None,
        expired: Callable[[], Exception] | None = None,
    ) -> None:
        self.left = seconds
        self._within = within
        self._expired = expired

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """``await awaitable`` within what is left of the budget (and of the one it is
        within), and spend what it took."""
        if self._within is not None:
            return await self._within.wait(self._wait(awaitable))
        return await self._wait(awaitable)

    async def _wait(self, awaitable: Awaitable[T]) -> T:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = asyncio.timeout(max(self.left, 0.0))
        try:
            async with deadline:
                return await awaitable
        except TimeoutError:
            # (one the awaitable raised, or an inner budget's, is not this budget's)
            if self._expired is None or not deadline.expired():
                raise
            raise self._expired() from None
        finally:
            self.left -= loop.time() - started
