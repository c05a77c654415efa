"""The outbound pipeline: agent reply -> formatted -> chunks or blocks -> paced -> sent.

Read top-down: :meth:`Outbound.deliver` takes what the agent returned and sends it in
order, through the account that received the message, one conversation at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from wechat_sdk.agent import Reply
from wechat_sdk.clock import Clock
from wechat_sdk.config.accounts import ResolvedAccount
from wechat_sdk.outbound.blocks import BlockCoalescer
from wechat_sdk.outbound.chunking import chunk_text
from wechat_sdk.outbound.delivery import DeliveryFailed, Sender
from wechat_sdk.outbound.markdown import format_reply
from wechat_sdk.puppet import OutboundFile

__all__ = ["Outbound"]

log = logging.getLogger("wechat_sdk.outbound")


class Outbound:
    """Replies of one account."""

    def __init__(self, account: ResolvedAccount, sender: Sender, clock: Clock) -> None:
        self.account = account
        self.sender = sender
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._last_chunk: dict[str, float] = {}
        self.in_flight = 0

    @property
    def queue_depth(self) -> int:
        return self.sender.pacer.queue_depth + self.in_flight

    def _lock(self, conversation_id: str) -> asyncio.Lock:
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = self._locks[conversation_id] = asyncio.Lock()
        return lock

    async def deliver(self, conversation_id: str, reply: Reply | AsyncIterator[str]) -> str:
        """Send a reply (whole or streamed). Returns the text that went out.

        Replies to one conversation never interleave; a streamed reply that fails midway
        has what it produced sent first, then the account's ``errorNotice``.
        """
        async with self._lock(conversation_id):
            self.in_flight += 1
            try:
                if isinstance(reply, Reply):
                    return await self._deliver_reply(conversation_id, reply)
                return await self._deliver_stream(conversation_id, reply)
            finally:
                self.in_flight -= 1
                self._last_chunk.pop(conversation_id, None)

    async def _deliver_reply(self, conversation_id: str, reply: Reply) -> str:
        sent: list[str] = []
        if reply.text and reply.text.strip():
            await self._send_text(conversation_id, reply.text, sent, reply.mention_ids)
        for file in reply.files:
            await self._send_file(conversation_id, file)
        return "\n\n".join(sent)

    async def _deliver_stream(self, conversation_id: str, source: AsyncIterator[str]) -> str:
        s = self.account.settings
        sent: list[str] = []
        if not s.blockStreaming or s.streamMode == "off":
            # streaming off: the whole reply, chunked by textChunkLimit
            parts: list[str] = []
            try:
                async for piece in source:
                    parts.append(piece)
            except Exception:
                if parts:
                    await self._send_text(conversation_id, "".join(parts), sent)
                raise
            await self._send_text(conversation_id, "".join(parts), sent)
            return "\n\n".join(sent)
        coalescer = BlockCoalescer(
            min_chars=s.draftChunk.minChars,
            max_chars=self.account.draft_max_chars,
            idle_ms=s.draftChunk.idleMs,
            break_preference=s.draftChunk.breakPreference,
            clock=self.clock,
        )

        async def emit(block: str) -> None:
            await self._send_text(conversation_id, block, sent)

        await coalescer.run(source, emit)
        return "\n\n".join(sent)

    async def _send_text(self, conversation_id: str, text: str, sent: list[str],
                         mention_ids: tuple[str, ...] = ()) -> None:
        s = self.account.settings
        formatted = format_reply(text, s.markdown)
        for chunk in chunk_text(formatted, s.textChunkLimit, s.chunkMode):
            await self._gap(conversation_id)
            await self.sender.send_text(conversation_id, chunk, mention_ids)
            mention_ids = ()  # mention once, on the first chunk
            sent.append(chunk)
            self._last_chunk[conversation_id] = self.clock.now()

    async def _send_file(self, conversation_id: str, file: OutboundFile) -> None:
        cap = self.account.media_max_bytes
        if file.size > cap:
            raise DeliveryFailed(f"file {file.name!r} is {file.size} bytes, over mediaMaxMb",
                                 code="too_large")
        if file.kind == "audio" and not file.duration_s:
            raise DeliveryFailed(f"voice file {file.name!r} needs duration_s", code="bad_file")
        await self._gap(conversation_id)
        await self.sender.send_file(conversation_id, file)
        self._last_chunk[conversation_id] = self.clock.now()

    async def _gap(self, conversation_id: str) -> None:
        """Keep the minimum gap between the chunks of one reply (pacing.chunkGapMs)."""
        pacing = self.account.settings.pacing
        last = self._last_chunk.get(conversation_id)
        if pacing is False or last is None:
            return
        wait = last + pacing.chunkGapMs / 1000.0 - self.clock.now()
        if wait > 0:
            await self.clock.sleep(wait)
