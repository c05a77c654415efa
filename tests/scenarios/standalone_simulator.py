"""For scenarios against ``wechat-sdk simulator serve`` in a process of its own (the
``served`` fixture is in conftest.py): a call of its control API. (Their real-time
wait is ``waiting.until``.)"""

from __future__ import annotations

import json
from typing import Any

import aiohttp


async def sim(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    """A call of the control API (``/sim/...``); its JSON answer."""
    data = json.dumps(body) if body is not None else None
    async with http.request(method, url, data=data) as resp:
        assert resp.status in (200, 201), await resp.text()
        return await resp.json(content_type=None)
