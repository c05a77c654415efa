"""A request's time budget (``agent.timeout``), spent only while waiting on the server.

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
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["TimeBudget"]

T = TypeVar("T")


class TimeBudget:
    """``seconds`` of waiting in all; :meth:`wait` raises ``TimeoutError`` past them."""

    def __init__(self, seconds: float) -> None:
        self.left = seconds

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """``await awaitable`` within what is left of the budget, and spend what it took."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(max(self.left, 0.0)):
                return await awaitable
        finally:
            self.left -= loop.time() - started
