"""Waiting in real time for evidence, not for a guess at how long something takes: one
``until`` for the tests whose world runs on the real clock (a standalone simulator, a
Node sidecar, Redis)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


async def until(what: str, condition: Callable[[], Any], within_s: float = 15.0) -> Any:
    """Wait until ``condition()`` (or, when it returns an awaitable, what that gives) is
    true, and return it; checked every 20 ms, an AssertionError naming ``what`` after
    ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"never happened within {within_s:g} s: {what}")
        await asyncio.sleep(0.02)
