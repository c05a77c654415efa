"""For scenarios against ``wechat-sdk simulator serve`` in a process of its own (the
``served`` fixture is in conftest.py): a call of its control API, and a real-time wait."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp


async def sim(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    """A call of the control API (``/sim/...``); its JSON answer."""
    data = json.dumps(body) if body is not None else None
    async with http.request(method, url, data=data) as resp:
        assert resp.status in (200, 201), await resp.text()
        return await resp.json(content_type=None)


async def until(what: str, condition: Callable[[], Any], within_s: float = 15) -> None:
    """Wait, in real time, until ``await condition()`` is true."""
    for _ in range(int(within_s / 0.05)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")
