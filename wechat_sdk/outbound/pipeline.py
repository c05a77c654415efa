"""The outbound pipeline: agent reply -> formatted -> chunks or blocks -> paced -> sent.

Read top-down: :meth:`Outbound.deliver` takes what the agent returned and sends it in
order, through the account that received the message, one conversation at a time.

A reply cut short by a stop (its task cancelled) reports what did not go out: the
messages not sent yet, as they would have gone (text chunks, then files), and for a
streamed reply the text the agent had produced but that was not sent yet. The gateway
keeps them in its outbox and sends them after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import Protocol

from wechat_sdk import media_fetch
from wechat_sdk.agent import Reply
from wechat_sdk.clock import Clock
from wechat_sdk.config.accounts import ResolvedAccount
from wechat_sdk.keyed_locks import KeyedLocks
from wechat_sdk.outbound.blocks import BlockCoalescer
from wechat_sdk.outbound.chunking import chunk_lines, chunk_text
from wechat_sdk.outbound.delivery import DeliveryFailed, SendCut, Sender
from wechat_sdk.outbound.markdown import format_reply
from wechat_sdk.outbound.message import OutboundMessage
from wechat_sdk.outbound.typing import Typing
from wechat_sdk.outbound.waiting import WaitingForUser
from wechat_sdk.outbound.window import fit_window, is_open, without_notice
from wechat_sdk.puppet import OutboundFile, ReplyWindow, WindowClosed, voice_length_problem
from wechat_sdk.stores.base import OutboxItem

__all__ = ["FETCH_TIMEOUT_S", "Outbound", "OutboundMessage", "fetch_url"]

log = logging.getLogger("wechat_sdk.outbound")

FETCH_TIMEOUT_S = media_fetch.FETCH_TIMEOUT_S

#: numbers the deliveries as they ask for their conversation (ReplyPlan.queued)
_QUEUED = itertools.count()


class PlanWatcher(Protocol):
    """Told how a reply's messages go out (a stopping gateway journals them)."""

    def added(
        self, messages: Sequence[OutboundMessage], later: Sequence[OutboundMessage] = ()
    ) -> bool:
        """``messages`` go out; ``later`` (a reply window did not take them) wait for the
        user's next message: the watcher writes them to wait. False when its write was
        refused."""

    def going(self, message: OutboundMessage) -> None: ...

    def done(self, message: OutboundMessage) -> None: ...

    def refused(
        self, messages: Sequence[OutboundMessage]
    ) -> tuple[list[OutboxItem], list[OutboxItem]] | None:
        """A closed reply window refused the first of ``messages`` (the rest of the
        reply): the rows the watcher wrote of them, and of what a reply window had left
        for the user's next message, handed over (the caller writes them again to wait
        for that message) and forgotten here. None when its rows must stay as they are
        (they stand for the reply at the next start)."""


class ReplyPlan:
    """The messages of a reply not sent yet, kept up to date as the reply goes out.

    A message is added when it is known (a whole reply's at once; a stream's block by
    block), and leaves the plan once it went out, was given up, or was cut with an
    outcome that forbids sending it again. What is left when a delivery is cut is what a
    stop keeps. ``watcher`` (set while a stop journals the reply) hears of each change.
    """

    def __init__(self) -> None:
        #: messages were added (the reply's delivery has planned it)
        self.began = False
        #: its place in the queue for its conversation, once its delivery asked for it
        #: (the order in which what a stop keeps would have gone out)
        self.queued: int | None = None
        #: the id of the message the reply answers (what a reply window keeps of it for
        #: later is marked with it: see kept._answered)
        self.answers: str | None = None
        #: for a text of a pairing request (the code, the owner's notice), its code: what
        #: a reply window keeps of it for later goes only while the request is pending
        self.pairing_code: str | None = None
        self.pending: list[OutboundMessage] = []
        #: the message handed to the puppet last and not done yet (it may be going out
        #: now: a journal written meanwhile marks it ``sending``)
        self.handed: OutboundMessage | None = None
        self.watcher: PlanWatcher | None = None
        #: the turn's "typing...", told when a message goes (see Outbound.deliver)
        self.typing: Typing | None = None
        #: its messages a reply window left, kept for the user's next message
        self.waiting: list[OutboundMessage] = []

    def add(
        self, messages: Sequence[OutboundMessage], later: Sequence[OutboundMessage] = ()
    ) -> bool:
        """``messages`` planned; ``later`` (given only with a watcher, which writes them
        with the messages) kept for the user's next message. False when the watcher
        could not write them."""
        self.began = True
        self.pending.extend(messages)
        watcher = self.watcher
        if watcher is None or not (messages or later):
            return True
        if not watcher.added(messages, later):
            return False
        self.waiting.extend(later)
        return True

    def going(self, message: OutboundMessage) -> None:
        if self.typing is not None:
            self.typing.replying()
        if self.watcher is not None:
            self.watcher.going(message)
        self.handed = message

    def done(self, message: OutboundMessage) -> None:
        if self.handed is message:
            self.handed = None
        for i, m in enumerate(self.pending):
            if m is message:
                del self.pending[i]
                break
        if self.watcher is not None:
            self.watcher.done(message)


class _Replying:
    """One ``async with outbound.replying(conversation)`` (a class: it is taken for
    every reply)."""

    __slots__ = ("_conversation", "_hold", "_outbound")

    def __init__(self, outbound: Outbound, conversation_id: str) -> None:
        self._outbound = outbound
        self._conversation = conversation_id
        self._hold = outbound._locks.hold(conversation_id)

    async def __aenter__(self) -> None:
        await self._hold.__aenter__()
        self._outbound.in_flight += 1

    async def __aexit__(self, *exc_info: object) -> None:
        outbound = self._outbound
        outbound.in_flight -= 1
        outbound._last_chunk.pop(self._conversation, None)
        await self._hold.__aexit__(*exc_info)


class Outbound:
    """Replies of one account."""

    def __init__(
        self,
        account: ResolvedAccount,
        sender: Sender,
        clock: Clock,
        waiting: WaitingForUser | None = None,
    ) -> None:
        self.account = account
        self.sender = sender
        self.clock = clock
        #: where what a reply window does not take waits for the user's next message
        #: (without it, such messages fail with ``window_closed``)
        self.waiting = waiting
        #: (a message the window refuses as it goes waits with the rest: see _send_all)
        sender.window_kept = waiting is not None
        self._locks = KeyedLocks()
        self._last_chunk: dict[str, float] = {}
        #: each conversation's "typing..." of its last turn (outbound/typing.py)
        self._typing: dict[str, Typing] = {}
        self.in_flight = 0

    @property
    def queue_depth(self) -> int:
        return self.sender.pacer.queue_depth + self.in_flight

    async def deliver(
        self,
        conversation_id: str,
        reply: Reply | AsyncIterator[str],
        *,
        sent: list[str] | None = None,
        plan: ReplyPlan | None = None,
        typing: Typing | None = None,
        files_sent: list[str] | None = None,
        waiting: list[OutboundMessage] | None = None,
        wait_for_login: bool = True,
        whole_lines: bool = False,
    ) -> str:
        """Send a reply (whole or streamed). Returns the text that went out.

        Replies to one conversation never interleave; a streamed reply that fails midway
        has what it produced sent first, then the account's ``errorNotice``. Pass ``sent``
        (a list) to learn what went out even when this raises: each text message is
        appended to it as soon as WeChat accepted it. Pass a ``plan`` to follow which
        messages did not go out yet (in order): when the delivery is cancelled, what is
        left there did not go out; a message whose send was cut with an unknown outcome
        leaves the plan without going to ``sent``. Pass the turn's ``typing`` (from
        :meth:`typing`) to have it told when the reply's first message goes: typing not
        shown by then is not shown (it would follow the reply). ``files_sent`` (a list)
        learns the name of each file that went out, as ``sent`` does for texts;
        ``waiting`` (a list) each message of it a reply window left, kept for the user's
        next message.

        A reply waits across a logout and goes out after the next login;
        ``wait_for_login=False`` (a proactive send: nobody is waiting for it in WeChat, its
        caller is) fails at once instead, with code ``not_logged_in``. ``whole_lines``:
        the text is cut only between lines (see :meth:`messages`).
        """
        sent = [] if sent is None else sent
        files_sent = [] if files_sent is None else files_sent
        plan = ReplyPlan() if plan is None else plan
        if waiting is not None:
            plan.waiting = waiting
        if typing is not None:
            plan.typing = typing
        plan.queued = next(_QUEUED)  # (the conversation is taken in this order)
        async with self.replying(conversation_id):
            try:
                if isinstance(reply, Reply):
                    await self._send_all(
                        conversation_id,
                        self.messages(reply, whole_lines=whole_lines),
                        sent,
                        plan,
                        files_sent=files_sent,
                        wait_for_login=wait_for_login,
                    )
                else:
                    await self._deliver_stream(
                        conversation_id, reply, sent, plan, wait_for_login=wait_for_login
                    )
            except DeliveryFailed as exc:
                exc.sent = "\n\n".join(sent)  # what did go out, for history
                exc.files = list(files_sent)
                raise
        return "\n\n".join(sent)

    def replying(self, conversation_id: str) -> _Replying:
        """Hold the conversation for one reply (``async with``), as :meth:`deliver` does:
        nothing else is sent to it meanwhile, and the messages sent inside keep the gap
        between chunks."""
        return _Replying(self, conversation_id)

    def typing(self, conversation_id: str) -> Typing:
        """``async with ... as typing``: "typing..." shown to the peer for the block
        (where the transport has it); give it to :meth:`deliver`."""
        return Typing(self.sender.puppet, self.clock, conversation_id, self._typing)

    def window(self, conversation_id: str) -> ReplyWindow | None:
        """The conversation's reply window now (None: the transport has none)."""
        return self.sender.puppet.reply_window(conversation_id)

    def check_window(self, conversation_id: str) -> None:
        """Raise :class:`~wechat_sdk.puppet.WindowClosed` when nothing may be sent to the
        conversation now (a proactive send: nothing is kept for later)."""
        window = self.window(conversation_id)
        if window is None or is_open(window, self.clock.now()):
            return
        if window.remaining <= 0:
            raise WindowClosed(
                "reply window closed: no more replies allowed until the user writes again",
                transient=False,
            )
        raise WindowClosed("reply window closed: the user has not written in 24 h", transient=False)

    def fit(
        self, conversation_id: str, messages: list[OutboundMessage], *, pack: bool = True
    ) -> tuple[list[OutboundMessage], list[OutboundMessage]]:
        """What of ``messages`` goes out now, and what waits for the user's next message
        (a reply window: packed unless ``pack`` is false, with the notice that more
        follows; with none, all now). Nothing is written here."""
        window = self.window(conversation_id)
        if window is None:
            return messages, []
        now, later = fit_window(
            messages, window, self.clock.now(), pack=pack, units=self.account.text_units
        )
        if later and self.waiting is None:
            raise self.sender.failure(
                conversation_id,
                f"reply window full: {len(later)} message(s) not sent",
                "window_closed",
            )
        return now, later

    def messages(self, reply: Reply, *, whole_lines: bool = False) -> list[OutboundMessage]:
        """The reply as WeChat messages: the text's chunks, then each file on its own (as
        :meth:`deliver` plans them, but for a reply window's packing). ``whole_lines``
        (a pairing code's text, an owner's notice of one): the text is cut only between
        lines, so that its code and approve command are never split (a line longer than
        ``textChunkLimit`` goes whole: see :func:`chunk_lines`)."""
        messages: list[OutboundMessage] = []
        if reply.text and reply.text.strip():
            messages = self._text_messages(reply.text, reply.mention_ids, whole_lines)
        messages.extend(OutboundMessage(file=f) for f in reply.files)
        return messages

    def _text_messages(
        self, text: str, mention_ids: tuple[str, ...] = (), whole_lines: bool = False
    ) -> list[OutboundMessage]:
        s = self.account.settings
        formatted = format_reply(text, s.markdown)
        units = self.account.text_units
        if whole_lines:
            chunks = chunk_lines(formatted, s.textChunkLimit, self.account.longest_line, units)
        else:
            chunks = chunk_text(formatted, s.textChunkLimit, s.chunkMode, units)
        # mention once, on the first chunk
        return [
            OutboundMessage(chunk, mention_ids if i == 0 else ()) for i, chunk in enumerate(chunks)
        ]

    async def _send_all(
        self,
        conversation_id: str,
        messages: Sequence[OutboundMessage],
        sent: list[str],
        plan: ReplyPlan,
        *,
        files_sent: list[str] | None = None,
        wait_for_login: bool = True,
    ) -> None:
        # each file is its own message, after the text; one that fails does not hold
        # back the others, and the first failure is raised once all were tried; a text
        # chunk that fails ends the reply, and so do a logout and a store that cannot be
        # used (nothing more can go); one a closed reply window refused (the server's
        # closed before ours said so) waits for the user's next message, with the rest
        # (but a proactive send's first: then none of it is sent or kept, and it raises)
        messages, later = self.fit(conversation_id, list(messages))
        kept: list[OutboxItem] = []  # (the rows of ``later``, once written here)
        if later:
            kept = self._keep_for_later(conversation_id, messages, later, plan)
        else:
            plan.add(messages)
        first_failure: DeliveryFailed | None = None
        for n, message in enumerate(messages):
            try:
                await self.send_message(
                    conversation_id,
                    message,
                    sent,
                    going=functools.partial(plan.going, message),
                    files_sent=files_sent,
                    wait_for_login=wait_for_login,
                )
            except DeliveryFailed as exc:
                if exc.code == "window_closed" and self.sender.window_kept:
                    if n == 0 and not wait_for_login:
                        self._refused_at_once(conversation_id, exc, plan, later, kept)
                    self._keep_refused(conversation_id, messages[n:], plan, later, kept)
                    break
                # (store_failed: its journal could not be kept true; store_unavailable: a
                # proactive send's lease could not be confirmed; nothing more goes)
                if message.file is None or exc.code in (
                    "not_logged_in",
                    "store_failed",
                    "store_unavailable",
                ):
                    raise
                first_failure = first_failure or exc
            except asyncio.CancelledError as cut:
                if isinstance(cut, SendCut):  # it went out, or maybe: never again
                    plan.done(message)
                raise
            plan.done(message)
        if first_failure is not None:
            raise first_failure

    def _keep_for_later(
        self,
        conversation_id: str,
        messages: list[OutboundMessage],
        later: list[OutboundMessage],
        plan: ReplyPlan,
    ) -> list[OutboxItem]:
        """Keep what the reply window leaves for the user's next message (a journal writes
        it with the messages that go now, in one step: then no rows are returned), and
        plan ``messages``; the rows of ``later`` written here are returned. When the
        store refuses, none goes (the last would say more follows, and the rest would
        never come): :class:`DeliveryFailed` ``store_failed``, raised from the store's
        error (the HTTP API answers by it)."""
        refused: Exception | None = None
        if plan.watcher is not None:
            if plan.add(messages, later=later):
                return []
        else:
            assert self.waiting is not None  # (fit: no room kept, no later part)
            try:
                kept = self.waiting.keep(
                    conversation_id, later, answers=plan.answers, pairing_code=plan.pairing_code
                )
            except Exception as exc:
                refused = exc
            else:
                plan.waiting.extend(later)
                plan.add(messages)
                return kept
        why = f" ({type(refused).__name__}: {refused})" if refused is not None else ""
        raise self.sender.failure(
            conversation_id,
            f"the reply window is full and the {len(later)} message(s) left for the "
            f"user's next message could not be kept in the store{why}: none sent",
            "store_failed",
        ) from refused

    def _refused_at_once(
        self,
        conversation_id: str,
        exc: DeliveryFailed,
        plan: ReplyPlan,
        later: Sequence[OutboundMessage],
        kept: Sequence[OutboxItem],
    ) -> None:
        """A proactive send whose first message a closed reply window refused: nothing of
        it went, so nothing of it is kept (what the window had left for the user's next
        message, ``later``, its rows ``kept``, is taken back) and its caller is told with
        :class:`~wechat_sdk.puppet.WindowClosed`, as when the window is closed before it
        (see :meth:`check_window`): the caller sends it again, or not, once the user
        wrote. Returns (all of it waits then, in order) only when the store would not
        give ``kept`` back: they would go without the refused part."""
        waiting = self.waiting
        if kept and waiting is not None:
            try:
                waiting.outbox.replace(kept, [])
            except Exception as taken:
                log.error(
                    "could not take back the %d message(s) kept for the user's next message "
                    "of a send refused at its first message (%s: %s): all of it waits, in "
                    "order account=%s to=%s",
                    len(kept),
                    type(taken).__name__,
                    taken,
                    self.account.id,
                    conversation_id,
                )
                return
            for message in later:  # (what the caller learns waits: none of it now)
                with contextlib.suppress(ValueError):
                    plan.waiting.remove(message)
        given_up = self.sender.failure(conversation_id, str(exc), exc.code)
        raise WindowClosed(str(exc), transient=False) from given_up

    def _keep_refused(
        self,
        conversation_id: str,
        rest: Sequence[OutboundMessage],
        plan: ReplyPlan,
        later: Sequence[OutboundMessage],
        kept: Sequence[OutboxItem],
    ) -> None:
        """The reply window closed as the reply went (the first message of ``rest`` was
        refused): ``rest`` waits for the user's next message, in order, as what a full
        window leaves does (no notice: nothing more may go now, and the one the window
        packing gave its last message is taken off, as more did not follow it), before
        ``later``, the end of the reply the window had left waiting already (its rows
        ``kept``: they are written again after ``rest``, in one step; so are the rows
        of both a stop's journal wrote, when it journals the reply).
        :class:`DeliveryFailed` ``store_failed`` when the store refused them."""
        waiting = self.waiting
        assert waiting is not None  # (sender.window_kept)
        # the rows written of ``rest`` (by a stop's journal) and of ``later`` (by it, or
        # here) are written again, after what else waits, in one step and in order
        rest_rows: list[OutboxItem] = []
        later_rows = list(kept)
        if plan.watcher is not None:
            journaled = plan.watcher.refused(rest)
            if journaled is None:  # (they stand for the reply at the next start)
                for message in rest:
                    plan.done(message)
                return
            rest_rows, later_rows = journaled[0], [*journaled[1], *kept]
        waits = without_notice(rest)
        try:
            if rest_rows or later_rows:
                rows = waiting.rows(
                    conversation_id,
                    [*waits, *later] if later_rows else waits,
                    answers=plan.answers,
                    pairing_code=plan.pairing_code,
                )
                waiting.outbox.replace([*rest_rows, *later_rows], rows)
                if waits:
                    waiting.kept(conversation_id, len(waits))
            else:
                waiting.keep(
                    conversation_id, waits, answers=plan.answers, pairing_code=plan.pairing_code
                )
        except Exception as exc:
            raise self.sender.failure(
                conversation_id,
                f"the reply window closed and the {len(waits)} message(s) left for the "
                f"user's next message could not be kept in the store "
                f"({type(exc).__name__}: {exc}): not sent",
                "store_failed",
            ) from exc
        at = len(plan.waiting) - len(later)
        plan.waiting[at:at] = waits
        for message in rest:
            plan.done(message)

    async def send_message(
        self,
        conversation_id: str,
        message: OutboundMessage,
        sent: list[str],
        *,
        going: Callable[[], None] | None = None,
        files_sent: list[str] | None = None,
        wait_for_login: bool = True,
    ) -> None:
        """Send one message (paced, with the chunk gap, retried); a text that went out is
        appended to ``sent`` (a file's name to ``files_sent``), also when the send
        finished after a cancellation (:class:`~wechat_sdk.outbound.delivery.SendCut`
        with outcome ``"sent"``)."""
        if message.file is not None:
            try:
                await self._send_file(conversation_id, message.file, going, wait_for_login)
            except SendCut as cut:
                if cut.outcome == "sent" and files_sent is not None:
                    files_sent.append(message.file.name)
                raise
            if files_sent is not None:
                files_sent.append(message.file.name)
            return
        assert message.text is not None
        await self._gap(conversation_id)
        try:
            await self.sender.send_text(
                conversation_id,
                message.text,
                message.mention_ids,
                going=going,
                wait_for_login=wait_for_login,
            )
        except SendCut as cut:
            if cut.outcome == "sent":
                sent.append(message.text)
            raise
        sent.append(message.text)
        self._last_chunk[conversation_id] = self.clock.now()

    async def _deliver_stream(
        self,
        conversation_id: str,
        source: AsyncIterator[str],
        sent: list[str],
        plan: ReplyPlan,
        *,
        wait_for_login: bool = True,
    ) -> None:
        s = self.account.settings
        send = functools.partial(
            self._send_text, conversation_id, sent=sent, plan=plan, wait_for_login=wait_for_login
        )
        if not s.blockStreaming or s.streamMode == "off":
            # streaming off: the whole reply, chunked by textChunkLimit
            parts: list[str] = []
            try:
                async for piece in source:
                    parts.append(piece)
            except asyncio.CancelledError:
                if "".join(parts).strip():
                    plan.add(self._text_messages("".join(parts)))
                raise
            except Exception:
                if parts:  # (a send failure is the sender's to log: the agent's is raised)
                    with contextlib.suppress(DeliveryFailed):
                        await send("".join(parts))
                raise
            await send("".join(parts))
            return
        coalescer = BlockCoalescer(
            min_chars=self.account.draft_min_chars,
            max_chars=self.account.draft_max_chars,
            idle_ms=s.draftChunk.idleMs,
            break_preference=s.draftChunk.breakPreference,
            clock=self.clock,
            units=self.account.text_units,
        )

        # with a reply window, the last place it has is kept for the end of the stream:
        # the rest is packed into it, or waits for the user's next message (with a notice)
        tail: list[str] = []

        async def emit(block: str) -> None:
            window = self.window(conversation_id)
            if tail or (window is not None and window.remaining <= 1):
                tail.append(block)
                return
            await send(block)

        try:
            await coalescer.run(source, emit)
        except asyncio.CancelledError:
            # after the rest of a block cut while going out: what the agent said since
            buffered = "\n\n".join([*tail, coalescer.unsent_text])
            if buffered.strip():
                plan.add(self._text_messages(buffered))
            raise
        except DeliveryFailed:
            raise  # (a send failed: nothing more goes)
        except Exception:
            if tail:  # what the agent said before it failed goes first, as above
                with contextlib.suppress(DeliveryFailed):
                    await send("\n\n".join(tail))
            raise
        if tail:
            await send("\n\n".join(tail))

    async def _send_text(
        self,
        conversation_id: str,
        text: str,
        *,
        sent: list[str],
        plan: ReplyPlan,
        wait_for_login: bool = True,
    ) -> None:
        await self._send_all(
            conversation_id,
            self._text_messages(text),
            sent,
            plan,
            wait_for_login=wait_for_login,
        )

    async def _send_file(
        self,
        conversation_id: str,
        file: OutboundFile,
        going: Callable[[], None] | None = None,
        wait_for_login: bool = True,
    ) -> None:
        cap = self.account.media_max_bytes
        voice_problem = voice_length_problem(file.kind, file.duration_s)
        if voice_problem is not None:
            raise self.sender.failure(
                conversation_id, f"file {file.name!r}: {voice_problem}", "bad_file"
            )
        if file.data is None and file.path is None:
            if file.url is None:
                raise self.sender.failure(
                    conversation_id, f"file {file.name!r} has no path, data or url", "bad_file"
                )
            try:
                data, mime = await asyncio.to_thread(fetch_url, file.url, cap, FETCH_TIMEOUT_S)
            except DeliveryFailed as exc:
                raise self.sender.failure(
                    conversation_id, f"file {file.name!r}: {exc}", exc.code
                ) from exc
            file = replace(file, data=data, mime=file.mime or mime)
        try:
            size = file.size
        except OSError as exc:
            raise self.sender.failure(
                conversation_id, f"file {file.name!r} cannot be read: {exc}", "bad_file"
            ) from exc
        if size > cap:
            raise self.sender.failure(
                conversation_id,
                f"file {file.name!r} is {size} bytes, over mediaMaxMb "
                f"({self.account.settings.mediaMaxMb:g} MB = {cap} bytes)",
                "too_large",
            )
        await self._gap(conversation_id)
        await self.sender.send_file(
            conversation_id, file, going=going, wait_for_login=wait_for_login
        )
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


def fetch_url(
    url: str, max_bytes: int, timeout: float = FETCH_TIMEOUT_S
) -> tuple[bytes, str | None]:
    """Download a file the agent gave by URL (see :func:`wechat_sdk.media_fetch.fetch_url`);
    raises :class:`DeliveryFailed` with code ``fetch_failed`` or ``too_large``.

    Loopback and private hosts are allowed here: the URL is the user's own choice (a
    Python agent's, or the HTTP API caller's, who holds its token). The rule against
    internal addresses guards what a peer sends (url FileBoxes) and what a webhook agent
    answers (it fetches its files itself, under that rule).
    """
    try:
        return media_fetch.fetch_url(url, max_bytes, timeout, allow_private=True)
    except media_fetch.FetchFailed as exc:
        raise DeliveryFailed(str(exc), code=exc.code) from exc
