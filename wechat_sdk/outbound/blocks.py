"""Coalesce a streaming agent's text pieces into blocks worth a WeChat message each.

WeChat cannot edit or stream a message, so pieces are buffered and sent as blocks: cut at
the best break once the buffer grows past ``max_chars``, flushed when the agent pauses for
``idle_ms`` with at least ``min_chars`` buffered (characters as a user sees them: grapheme
clusters, an emoji with its skin tone one), and flushed at the end. Time is read
only through the :class:`~wechat_sdk.clock.Clock` port, so a ``VirtualClock`` drives it.

Cuts are :func:`~wechat_sdk.outbound.chunking.cut_chunks`'s, so a fenced code block is
kept whole when it fits, and one longer than a block is closed at the end of a block and
reopened at the start of the next, as in a whole reply. A pause does not send a fence
that is still open: it waits until the fence closes or ``max_chars`` cuts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from wechat_sdk.clock import Clock
from wechat_sdk.outbound.chunking import (
    BREAK_PREFERENCES,
    cut_chunks,
    grapheme_count,
    open_fence_start,
    text_length,
)

__all__ = ["BlockCoalescer"]

#: the start of a line that may turn out to be a fence's opening line
_MAYBE_FENCE: Final = re.compile(r" {0,3}[`~]")

_Next = tuple[bool, str]


async def _next_piece(source: AsyncIterator[str]) -> _Next:
    """``(True, piece)`` or ``(False, "")`` at the end: a task must not raise StopAsyncIteration."""
    try:
        return True, await anext(source)
    except StopAsyncIteration:
        return False, ""


class BlockCoalescer:
    """Turns a stream of text pieces into blocks of ``min_chars``..``max_chars`` characters
    (``min_chars`` counted in graphemes, the characters a user sees; ``max_chars`` in
    ``units``, as :func:`~wechat_sdk.outbound.chunking.chunk_text` counts its limit)."""

    def __init__(
        self,
        *,
        min_chars: int,
        max_chars: int,
        idle_ms: int,
        break_preference: str = "paragraph",
        clock: Clock,
        units: str = "code_points",
    ) -> None:
        if max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, got {max_chars}; raise it")
        if min_chars < 0 or min_chars > max_chars:
            raise ValueError(
                f"min_chars must be between 0 and max_chars ({max_chars}), got {min_chars}"
            )
        if idle_ms < 0:
            raise ValueError(f"idle_ms must not be negative, got {idle_ms}")
        if break_preference not in BREAK_PREFERENCES:
            raise ValueError(
                f"unknown break_preference {break_preference!r}: "
                "use 'paragraph', 'newline' or 'sentence'"
            )
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.idle_ms = idle_ms
        self.break_preference = break_preference
        text_length("", units)  # (an unknown unit is refused here, not mid-stream)
        self.units = units
        self._clock = clock
        self._buf = ""
        self._pos = 0  # start of unsent text in _buf; cuts move it, no re-slicing per cut
        self._reopen = ""  # a fence's opening line, when the unsent text continues that fence

    @property
    def unsent_text(self) -> str:
        """Text taken from the source and not emitted yet (what a cancelled run leaves)."""
        return self._reopen + self._buf[self._pos :]

    async def run(self, source: AsyncIterator[str], emit: Callable[[str], Awaitable[None]]) -> None:
        """Pull every piece from ``source`` and ``await emit(block)`` for each block, in order.

        If ``source`` raises, what was buffered is emitted first, then the same exception
        is raised again.
        """
        self._buf, self._pos, self._reopen = "", 0, ""
        pending: asyncio.Task[_Next] | None = None
        try:
            while True:
                if pending is None:
                    # One __anext__ at a time: this task survives idle races until it finishes.
                    pending = asyncio.create_task(_next_piece(source))
                # Below min_chars an idle pause could not flush anything: no timer needed.
                idle_can_flush = self._idle_sendable() >= max(self.min_chars, 1)
                if idle_can_flush and not await self._wait_or_idle(pending):
                    # The agent paused long enough: send what it has said so far.
                    await self._flush_idle(emit)
                    continue
                task, pending = pending, None
                try:
                    more, piece = await task
                except Exception:
                    await self._drain(emit, everything=True)
                    raise
                if not more:
                    break
                self._append(piece)
                await self._drain(emit, everything=False)
            await self._drain(emit, everything=True)
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    async def _wait_or_idle(self, pending: asyncio.Task[_Next]) -> bool:
        """True when ``pending`` finished first, False when ``idle_ms`` passed first."""
        idle = asyncio.create_task(self._clock.sleep(self.idle_ms / 1000))
        try:
            await asyncio.wait({pending, idle}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not idle.done():
                idle.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await idle
        return pending.done()

    def _buffered(self) -> int:
        return text_length(self.unsent_text, self.units)

    def _idle_sendable(self) -> int:
        """How many graphemes of the unsent text a pause may send: not a fence still open."""
        text = self.unsent_text
        if len(text) < max(self.min_chars, 1):
            return 0  # too little to send anyway (no fewer code points than graphemes)
        return grapheme_count(text[: _idle_end(text)])

    def _append(self, piece: str) -> None:
        # Compact before appending so the buffer holds only unsent text (bounded work).
        self._buf = self.unsent_text + piece
        self._pos, self._reopen = 0, ""
        self._skip_space()

    def _skip_space(self) -> None:
        buf, pos = self._buf, self._pos
        while pos < len(buf) and buf[pos].isspace():
            pos += 1
        self._pos = pos

    async def _drain(self, emit: Callable[[str], Awaitable[None]], *, everything: bool) -> None:
        """Emit full blocks; with ``everything`` also the remainder (if not blank)."""
        if self._buffered() > self.max_chars:
            text = self.unsent_text
            self._buf, self._pos, self._reopen = text, 0, ""
            chunks = cut_chunks(text, self.max_chars, self.break_preference, self.units)
            # The last chunk is the rest, which waits for more text.
            for chunk, following in itertools.pairwise(chunks):
                # Moved on before the await: a cancelled emit leaves only the rest unsent.
                self._pos, self._reopen = following.begin, following.reopen
                await emit(chunk.text)
        if everything and self._buffered() > 0:
            block = self.unsent_text.rstrip()
            self._buf, self._pos, self._reopen = "", 0, ""
            if block:
                await emit(block)

    async def _flush_idle(self, emit: Callable[[str], Awaitable[None]]) -> None:
        """A pause: emit the unsent text, except a fence still open, which stays buffered."""
        text = self.unsent_text
        end = _idle_end(text)
        self._buf, self._pos, self._reopen = text, end, ""
        block = text[:end].rstrip()
        if block:
            await emit(block)


def _idle_end(text: str) -> int:
    """Where a pause's block ends: before a fence still open, and before an unfinished
    last line that may be opening one (a marker cut by the pause: two backticks so far)."""
    end = open_fence_start(text)
    if end == len(text):
        line = text.rfind("\n") + 1
        if _MAYBE_FENCE.match(text, line):
            return line
    return end
