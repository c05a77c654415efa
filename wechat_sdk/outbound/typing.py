"""'typing...' shown to the peer for a whole turn, where the transport has it (iLink).

Shown when the turn starts, refreshed every :data:`TYPING_REFRESH_S` while the agent
thinks, calls tools and the reply goes out, and cancelled when the turn ends, also when
the agent stays silent or fails. A typing indicator is a courtesy: the puppet never
raises for one that could not be shown.
"""

from __future__ import annotations

import asyncio
import contextlib

from wechat_sdk.clock import BACKGROUND, Clock
from wechat_sdk.puppet import Puppet

__all__ = ["TYPING_REFRESH_S", "Typing"]

#: seconds between two "typing" calls while a turn goes on (the client shows it for a
#: few seconds after each)
TYPING_REFRESH_S = 5.0


class Typing:
    """``async with Typing(puppet, clock, conversation):`` shows typing for the block."""

    __slots__ = ("_clock", "_conversation", "_puppet", "_refresh")

    def __init__(self, puppet: Puppet, clock: Clock, conversation_id: str) -> None:
        self._puppet = puppet
        self._clock = clock
        self._conversation = conversation_id
        self._refresh: asyncio.Task[None] | None = None

    async def __aenter__(self) -> None:
        if not self._puppet.capabilities.typing:
            return
        await self._puppet.set_typing(self._conversation, True)
        self._refresh = asyncio.get_running_loop().create_task(self._keep_showing())

    async def __aexit__(self, *exc_info: object) -> None:
        if self._refresh is None:
            return
        self._refresh.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._refresh
        self._refresh = None
        await asyncio.shield(self._puppet.set_typing(self._conversation, False))

    async def _keep_showing(self) -> None:
        BACKGROUND.set(True)  # a virtual clock's world is not kept busy by it
        while True:
            await self._clock.sleep(TYPING_REFRESH_S)
            await self._puppet.set_typing(self._conversation, True)
