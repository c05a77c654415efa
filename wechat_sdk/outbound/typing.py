"""'typing...' shown to the peer for a whole turn, where the transport has it (iLink).

Shown when the turn starts, refreshed every :data:`TYPING_REFRESH_S` while the agent
thinks, calls tools and the reply goes out, and cancelled when the turn ends, also when
the agent stays silent or fails. The calls go out in a task of their own, so the turn never
waits for them (on iLink a typing call is two HTTP requests); a conversation's next turn
shows typing only once the last one's cancel went out, so they never cross. A call under
way when the turn ends is let finish (cutting an HTTP request costs its connection), then
the cancel goes. A reply ready before its typing call could go out (a command, an instant
agent) is sent without typing: shown after the reply, it would only flicker. A typing
indicator is a courtesy: the puppet never raises for one that could not be shown.
"""

from __future__ import annotations

import asyncio

from wechat_sdk.clock import BACKGROUND, Clock
from wechat_sdk.puppet import Puppet

__all__ = ["TYPING_REFRESH_S", "Typing"]

#: seconds between two "typing" calls while a turn goes on (the client shows it for a
#: few seconds after each)
TYPING_REFRESH_S = 5.0


class Typing:
    """``async with Typing(puppet, clock, conversation, showing) as typing:`` shows typing
    for the block; the reply tells it when its first message goes (:meth:`replying`).
    ``showing``: the account's typing of each conversation (the last turn's), so that
    the next one waits for it."""

    __slots__ = (
        "_clock",
        "_conversation",
        "_ended",
        "_puppet",
        "_replying",
        "_showing",
        "_sleeping",
        "task",
    )

    def __init__(
        self,
        puppet: Puppet,
        clock: Clock,
        conversation_id: str,
        showing: dict[str, Typing],
    ) -> None:
        self._puppet = puppet
        self._clock = clock
        self._conversation = conversation_id
        self._showing = showing
        #: the calls (None: the transport shows no typing)
        self.task: asyncio.Task[None] | None = None
        #: the turn ended; the task is between two calls (only then is it cut)
        self._ended = False
        self._sleeping = False
        #: a message of the reply went to the puppet
        self._replying = False

    def replying(self) -> None:
        """A message of the turn's reply is going to the peer: typing not shown by now
        is not shown in this turn (shown after the reply, it would only flicker)."""
        self._replying = True

    async def __aenter__(self) -> Typing:
        if not self._puppet.capabilities.typing:
            return self
        showing, key = self._showing, self._conversation
        before = showing.get(key)
        task = asyncio.get_running_loop().create_task(
            self._show(None if before is None else before.task)
        )
        showing[key] = self

        def forget(_: asyncio.Task[None]) -> None:
            if showing.get(key) is self:
                del showing[key]

        task.add_done_callback(forget)
        self.task = task
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # the cancel goes out in the task: the turn does not wait for it
        self._ended = True
        stopping = isinstance(exc_info[1], asyncio.CancelledError)  # (a stop cut the turn)
        if self.task is not None and (self._sleeping or stopping):
            self.task.cancel()

    async def _show(self, before: asyncio.Task[None] | None) -> None:
        BACKGROUND.set(True)  # a virtual clock's world is not kept busy by it
        if before is not None:
            await asyncio.wait({before})  # the last turn's cancel goes out first
        shown = False
        try:
            if self._replying:  # the reply went ahead of it: typing now would follow it
                return
            while not self._ended:
                shown = True
                await self._puppet.set_typing(self._conversation, True)
                if self._ended:
                    break
                self._sleeping = True
                try:
                    await self._clock.sleep(TYPING_REFRESH_S)
                finally:
                    self._sleeping = False
        finally:
            if shown:  # (a turn that ended before its typing began shows none)
                await asyncio.shield(self._puppet.set_typing(self._conversation, False))
