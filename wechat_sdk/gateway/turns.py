"""The turn: a message that passed the inbound steps, answered by the agent, the reply
delivered, the DM history written. One turn at a time per conversation.

Each turn is a task of its own, so that nothing that answers a message holds the reading
of events (a pairing code waiting for its pacing included). A stop that cuts a turn hands
what is left of it to the outbox (:class:`~wechat_sdk.gateway.kept.KeptWork`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from wechat_sdk.agent import (
    Agent,
    AgentFailed,
    AgentTurn,
    HistoryEntry,
    Reply,
    resolve_agent_result,
)
from wechat_sdk.clock import Clock
from wechat_sdk.config.accounts import ResolvedAccount
from wechat_sdk.events import GatewayEvents
from wechat_sdk.inbound.history import HistoryBook, HistoryLost, entry_text, reply_text
from wechat_sdk.keyed_locks import KeyedLocks
from wechat_sdk.logtext import shown
from wechat_sdk.outbound.delivery import DeliveryFailed, SendCut, finish_or_cut
from wechat_sdk.outbound.pipeline import Outbound, OutboundMessage, ReplyPlan
from wechat_sdk.outbound.typing import Typing
from wechat_sdk.puppet import OutboundFile
from wechat_sdk.stores.base import LeaseLost, OutboxItem

__all__ = ["Begun", "TurnProgress", "Turns", "WatchedStream"]

#: what became of a turn handed to :meth:`Turns.answer`
Begun = Literal["answering", "refused", "kept"]


class WatchedStream:
    """A streaming agent's reply, noting whether it said anything and whether it ended
    (or failed)."""

    def __init__(self, source: AsyncIterator[str]) -> None:
        self._source = source
        self.produced = False
        self.ended = False
        self.failed = False

    def __aiter__(self) -> WatchedStream:
        return self

    async def __anext__(self) -> str:
        try:
            piece = await self._source.__anext__()
        except StopAsyncIteration:
            self.ended = True
            raise
        except Exception:
            self.failed = True
            raise
        if not self.produced and piece.strip():
            self.produced = True
        return piece


#: numbers the turns and texts in the order they come (see TurnProgress.order)
_ORDER = itertools.count()


@dataclass
class TurnProgress:
    """How far a turn got: what a stop that cuts it keeps."""

    #: the outbox item of a kept turn asked again after a restart
    kept: OutboxItem | None = None
    #: the agent returned (a reply, a stream, or nothing)
    answered: bool = False
    #: what it returned, when a whole reply (a text of send_soon's too): what a journal
    #: written before the delivery planned its messages keeps
    reply: Reply | None = None
    stream: WatchedStream | None = None
    #: text messages that went out
    sent: list[str] = field(default_factory=list)
    #: files of the reply that went out
    files_sent: list[OutboundFile] = field(default_factory=list)
    #: messages of the reply not sent yet (what a cut delivery leaves)
    plan: ReplyPlan = field(default_factory=ReplyPlan)
    #: set once a stop began: the turn as written to the outbox, kept true as it goes on
    journal: Journal | None = None
    #: when it came, among the account's turns and texts (a stop journals them in order)
    order: int = field(default_factory=lambda: next(_ORDER))
    #: a text of a pairing request (see send_soon): its code, kept with what a stop keeps
    pairing_code: str | None = None


class Journal(Protocol):
    """A turn in flight written to the outbox when a stop begins (see KeptWork)."""

    def written(self) -> bool:
        """The turn (or its reply's messages) reached the store."""
        ...

    def answered(self) -> None: ...

    def holds(self, message: OutboundMessage) -> OutboxItem | None:
        """The outbox item of a message of the reply, when the journal holds it."""
        ...

    def unplanned(self) -> list[OutboundMessage]:
        """The whole reply's messages, written before its delivery planned them (none
        once it has)."""
        ...

    def holds_reply(self) -> bool:
        """Its rows stand for the whole reply (written before the delivery planned it
        otherwise, and the swap for the planned ones refused): nothing of the reply is
        written again."""
        ...

    def cut(self, *, reply_stands: bool = True) -> None:
        """The turn was cut (``reply_stands`` False: its reply could not be kept, the
        turn stays kept instead)."""
        ...

    def close(self) -> None: ...


class CutTurns(Protocol):
    """Where a turn cut by a stop goes (the outbox room)."""

    def keep_cut_turn(self, turn: AgentTurn, progress: TurnProgress, turns: Turns) -> None: ...

    def journal(self, turn: AgentTurn, progress: TurnProgress) -> Journal: ...

    def journal_text(self, to: str, progress: TurnProgress) -> Journal: ...

    def keep_cut_text(self, to: str, text: str, progress: TurnProgress, handed: bool) -> None: ...

    def message_done(self, item: OutboxItem) -> bool: ...

    async def send_waiting(
        self, turns: Turns, conversation_id: str, *, answered: bool = True
    ) -> None: ...


class Turns:
    """The turns of one account: each a task, one at a time per conversation."""

    def __init__(
        self,
        *,
        account: ResolvedAccount,
        agent: Agent,
        outbound: Outbound,
        history: HistoryBook,
        clock: Clock,
        self_id: Callable[[], str | None],
        marks_durable: Callable[[int | None], Awaitable[None]],
        on_error: Callable[[str], None],
        cut: CutTurns,
        log: logging.LoggerAdapter[logging.Logger],
        events: GatewayEvents | None = None,
        journal_every_turn: bool = False,
        on_turn_failed: Callable[[BaseException], None] = lambda exc: None,
    ) -> None:
        self.account = account
        self.events = events or GatewayEvents()
        self.agent = agent
        self.outbound = outbound
        self.history = history
        self.clock = clock
        self._self_id = self_id
        self._marks_durable = marks_durable
        self._on_error = on_error
        self.log = log
        #: the conversations, held by one turn (or one piece of kept work) at a time
        self.conversations = KeyedLocks()
        self.tasks: set[asyncio.Task[Any]] = set()
        self._cut = cut
        #: the turns being answered now, with how far each got
        self._active: dict[asyncio.Task[Any] | None, tuple[AgentTurn, TurnProgress]] = {}
        #: every turn from :meth:`answer` until its task ends (waiting for its
        #: conversation included), with how far it got
        self._queued: dict[asyncio.Task[Any], tuple[AgentTurn, TurnProgress]] = {}
        #: the texts of :meth:`send_soon` until their task ends: to whom, how far
        self._texts: dict[asyncio.Task[Any], tuple[str, TurnProgress]] = {}
        #: a stop is letting the turns in flight finish (see settle)
        self._settling = False
        #: write every turn to the outbox as it begins, not only at a stop (an account
        #: held by lease: the gateway that takes it over after a kill -9 finishes it)
        self.journal_every_turn = journal_every_turn
        #: told the error that broke a turn (an account held by lease: a Redis outage,
        #: be it a read's or a write's, hands the account over once Redis answers, so
        #: that what its journal kept goes on)
        self._on_turn_failed = on_turn_failed

    def track(self, task: asyncio.Task[Any]) -> None:
        """Count ``task`` as work in flight until it ends (a stop waits for it)."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _turn_ended(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        del self._queued[task]

    def answer(
        self,
        turn: AgentTurn,
        mark_position: Callable[[], int | None],
        message: OutboxItem | None = None,
    ) -> Begun:
        """Answer ``turn`` in a task of its own. ``message``: the turn's message as the
        outbox journaled it in the inbound steps; the turn stands for it from now on (its
        journal first, when every turn is journaled), so it is taken out. Then
        ``mark_position`` gives the store's mark position: nothing of the reply goes out
        before the message's dedupe mark and its taking out are durable, so a crash never
        makes the message look new again, nor leaves it journaled, after something was
        sent for it. A message the store would not take out is not answered now: it stays
        journaled (never answered twice): ``"refused"`` (nothing else stands for it: to
        be tried again), or ``"kept"`` (the turn's journal, which the store would not take
        out either, stands for it at the next start)."""
        progress = TurnProgress()
        # written before anything else can happen to it: by lease, or a stop under way
        # (a kill before the grace period ends must not lose it)
        if self.journal_every_turn or self._settling:
            progress.journal = self._cut.journal(turn, progress)
            if message is not None and not progress.journal.written():
                # the turn's journal did not reach the store: the message's entry stays
                # for it (taken in again; never answered twice)
                return "refused"
        if message is not None and not self._cut.message_done(message):
            journal = progress.journal
            if journal is not None:  # (two entries must not stand for the message)
                journal.close()
                if journal.written():  # the store would not take the turn's out either:
                    self._group_history_taken(turn)  # (the journal keeps it)
                    return "kept"  # the next start finds it, and drops the message's
            return "refused"
        self._group_history_taken(turn)
        mark = mark_position()
        task = asyncio.get_running_loop().create_task(self._answer(turn, mark, progress))
        self._queued[task] = (turn, progress)
        self.tasks.add(task)  # (tracked as track() does, with one callback for both)
        task.add_done_callback(self._turn_ended)
        return "answering"

    def _group_history_taken(self, turn: AgentTurn) -> None:
        """A group turn was taken: the group's history it was handed goes (it stayed
        until now: a turn refused is tried again with it). A store that fails here
        keeps that history whole (one removal): the agent is handed it again with the next
        answer. A history store without that removal (written before it) may lose the
        messages noted since the turn began: said so."""
        if turn.room_id is None or not turn.history:
            return
        try:
            self.history.group_answered(turn.room_id, turn.history)
        except HistoryLost as lost:
            self.log.warning(
                "could not put back the history of group %s: %s (%d message(s) noted after "
                "its turn began lost: the history store has no remove()) reason=history_failed",
                shown(turn.room_id),
                shown(lost.__cause__, 200),
                lost.lost,
            )
        except Exception as exc:
            self.log.warning(
                "could not clear the history of group %s: %s (handed to the agent again "
                "with its next answer) reason=history_failed",
                shown(turn.room_id),
                shown(exc, 200),
            )

    def send_soon(self, to: str, text: str, *, pairing_code: str | None = None) -> None:
        """Send a text (a pairing code, an owner's notice) in a task of its own, once every
        dedupe mark so far is durable. A text of a pairing request (``pairing_code``: its
        code) is journaled as a turn's reply is from the start, and any text once a stop
        began (or always, on an account held by lease): a kill must not lose it (the
        request is made: the stranger writing again gets no code while it is pending, and
        a few writes a request cost nothing); what a cut leaves is kept, with
        ``pairing_code`` (the next start sends it only while that request is pending)."""
        # (no agent to ask: a turn answered at once)
        progress = TurnProgress(answered=True, reply=Reply(text=text), pairing_code=pairing_code)
        progress.plan.pairing_code = pairing_code

        async def send() -> None:
            try:
                await self._marks_durable(None)
                with contextlib.suppress(DeliveryFailed):  # the sender logged and counted it
                    await self.outbound.deliver(
                        to,
                        progress.reply or Reply(),
                        sent=progress.sent,
                        plan=progress.plan,
                        whole_lines=True,  # (its code and approve command never cut)
                    )
            except asyncio.CancelledError as cut:
                # (SendCut: the message with the puppet went out, or maybe did)
                self._cut.keep_cut_text(to, text, progress, handed=isinstance(cut, SendCut))
                raise
            if progress.journal is not None:
                progress.journal.close()

        if pairing_code is not None or self.journal_every_turn or self._settling:
            progress.journal = self._cut.journal_text(to, progress)
        task = asyncio.get_running_loop().create_task(send())
        self._texts[task] = (to, progress)
        task.add_done_callback(self._texts.pop)
        self.track(task)

    def send_waiting_soon(self, conversation_id: str) -> None:
        """The user wrote, and is not answered (a stranger whose pairing request is
        pending, an owner told of requests who may not talk to the bot): their message
        opened their reply window all the same, so what waits for it (a pairing code, an
        owner's notice) goes now, in a task of its own, the conversation held; the agent's
        words that wait (for one revoked meanwhile) do not."""
        waiting = self.outbound.waiting
        if waiting is None or not waiting.has(conversation_id):
            return

        async def send() -> None:
            try:
                async with self.conversations.hold(conversation_id):
                    await self._cut.send_waiting(self, conversation_id, answered=False)
            except LeaseLost:  # another gateway holds the account: the stop here says so
                return  # (what did not go stays waiting in the store, as on a cut)
            except Exception as exc:  # (DeliveryFailed: the sender logged and counted it)
                if not isinstance(exc, DeliveryFailed):
                    self.log.warning(
                        "could not send what waits for %s: %s (it waits for their next message)",
                        shown(conversation_id),
                        shown(f"{type(exc).__name__}: {exc}", 200),
                    )

        self.track(asyncio.get_running_loop().create_task(send()))

    async def _answer(self, turn: AgentTurn, mark: int | None, progress: TurnProgress) -> None:
        try:
            # one turn at a time per conversation keeps history in order
            async with self.conversations.hold(turn.conversation_id):
                # the user wrote: what an earlier reply window could not take goes first
                await self._cut.send_waiting(self, turn.conversation_id)
                await self.reply(turn, progress, mark)
        except asyncio.CancelledError:
            # the gateway is stopping and the grace period ran out (waiting, thinking or
            # sending): keep what is left
            self._cut.keep_cut_turn(turn, progress, self)
            raise
        except LeaseLost:
            return  # another gateway holds the account: the stop here says so (KeptWork)
        except Exception as exc:
            # the store failed under it (Redis out of reach, a full disk): said, not left
            # for asyncio to print at exit; its journal, when written, stays in the store
            journal = progress.journal
            kept = journal is not None and journal.written()
            error = f"{type(exc).__name__}: {exc}"
            self._on_error(f"turn failed: {error}")
            self._on_turn_failed(exc)
            self.log.error(
                "the turn for message %s from %s failed: %s (%s) reason=turn_failed",
                shown(turn.message_id),
                shown(turn.sender_id),
                shown(error, 200),
                "kept in the store: taken up at the account's next start"
                if kept
                else "nothing of it kept: the rest of its reply is not sent",
            )

    async def reply(self, turn: AgentTurn, progress: TurnProgress, mark: int | None) -> None:
        """Ask the agent and deliver its reply (the conversation is held)."""
        turn = self.with_dm_history(turn)
        key = asyncio.current_task()
        self._active[key] = (turn, progress)
        progress.plan.answers = turn.message_id or None
        # (a kept turn asked again begins here: once a stop began, it is written too)
        if (self.journal_every_turn or self._settling) and progress.journal is None:
            progress.journal = self._cut.journal(turn, progress)
        try:
            await self._reply(turn, progress, mark)
        finally:
            del self._active[key]
        if progress.journal is not None:  # done after a stop began: nothing left to keep
            progress.journal.close()

    async def _reply(self, turn: AgentTurn, progress: TurnProgress, mark: int | None) -> None:
        conversation = turn.conversation_id
        # filled as each message goes out: what WeChat got is known even when the
        # reply fails partway (a later chunk or file, or a stream that raised)
        parts = progress.sent
        async with self.outbound.typing(conversation) as typing:  # the whole turn
            await self._answer_and_deliver(turn, progress, mark, parts, typing)
        self.record_dm(turn, parts, progress.files_sent)

    async def _answer_and_deliver(
        self,
        turn: AgentTurn,
        progress: TurnProgress,
        mark: int | None,
        parts: list[str],
        typing: Typing,
    ) -> None:
        conversation = turn.conversation_id
        try:
            reply = await resolve_agent_result(self.agent(turn))
            progress.answered = True
            if isinstance(reply, Reply):
                progress.reply = reply
            if progress.journal is not None:
                progress.journal.answered()
            if reply is not None:
                if not isinstance(reply, Reply):
                    reply = progress.stream = WatchedStream(reply)
                await self._marks_durable(mark)
                files: list[str] = []
                try:
                    await self.outbound.deliver(
                        conversation,
                        reply,
                        sent=parts,
                        plan=progress.plan,
                        typing=typing,
                        files_sent=files,
                    )
                finally:
                    if isinstance(reply, Reply):  # (for history: each file by its kind)
                        progress.files_sent = _files_that_went(reply.files, files)
                    # what went out, all of the reply or not (a failure or a stop cut it;
                    # what a stop kept is an event of its own when it goes: KeptWork)
                    self.events.reply_sent(
                        self.account.id,
                        conversation_id=conversation,
                        in_reply_to=turn.message_id,
                        text="\n\n".join(parts),
                        messages=len(parts),
                        files=len(files),
                    )
        except DeliveryFailed:
            pass  # the sender logged it and recorded it as last_error (on_failure)
        except Exception as exc:
            progress.answered = True  # with an error: the notice stands for the reply
            if progress.stream is not None and not progress.stream.produced:
                progress.stream = None  # (it said nothing: nothing of it to keep)
            notice = self.account.settings.errorNotice
            progress.reply = Reply(text=notice) if notice else None
            if progress.plan.began and progress.reply is not None:
                # a reply of its own after what the stream sent: planned afresh (a stop
                # journals it as it does any reply not planned yet)
                fresh = ReplyPlan()
                fresh.watcher, fresh.answers = progress.plan.watcher, progress.plan.answers
                progress.plan = fresh
            if progress.journal is not None:
                progress.journal.answered()
            self._on_error(f"agent error: {type(exc).__name__}: {exc}")
            if isinstance(exc, AgentFailed):  # expected (a service refused): one line
                self.log.warning(
                    "agent failed on message %s: %s reason=%s",
                    shown(turn.message_id),
                    shown(exc, 300),
                    exc.reason,
                )
            else:  # a bug, in the agent or here: its traceback
                self.log.exception("agent failed on message %s", turn.message_id)
            if progress.reply is not None:
                with contextlib.suppress(DeliveryFailed):
                    await self._marks_durable(mark)
                    await self.outbound.deliver(
                        conversation, progress.reply, plan=progress.plan, typing=typing
                    )

    def with_dm_history(self, turn: AgentTurn) -> AgentTurn:
        """A DM turn with its conversation's history as it stands now, the conversation
        held: the turns before it are answered and recorded by then (a message that came
        while the last one was being answered waited for it, and knows it)."""
        if turn.chat_type != "direct":
            return turn  # (a group's history is taken as its message comes: the pipeline)
        return dataclasses.replace(turn, history=self.history.dm(turn.sender_id))

    def record_dm(
        self, turn: AgentTurn, parts: list[str], files: Iterable[OutboundFile] = ()
    ) -> None:
        """Remember a DM turn with what went out of its reply, its texts (``parts``) and
        files (even if a part failed)."""
        if turn.chat_type != "direct":
            return
        file = turn.media[0] if turn.media else None
        text = entry_text(turn.text, file.kind if file else None, file.name if file else "")
        user = HistoryEntry(
            "user", turn.sender_id, turn.sender_name, text, turn.timestamp, turn.message_id
        )
        self.history.record_dm_turn(turn.sender_id, user, self.answer_entry(parts, files))

    def answer_entry(
        self, texts: Sequence[str], files: Iterable[OutboundFile] = ()
    ) -> HistoryEntry | None:
        """The history entry of what the bot said: the texts and files that went out
        (None: nothing did)."""
        text = reply_text(texts, [(f.kind, f.name) for f in files])
        if not text:
            return None
        return HistoryEntry(
            "assistant", self._self_id() or "", self.account.display_name, text, self.clock.now()
        )

    async def settle(self, grace_s: float) -> None:
        """Let the turns in flight finish for up to ``grace_s`` (clock time), then cut the
        rest (what is left of each goes to the outbox).

        The turns in flight (those waiting for their conversation too, and those that
        begin meanwhile) are written to the outbox first, and kept true as they go on, so
        that a kill during the grace period (a supervisor's SIGKILL) loses nothing.
        """
        sender = self.outbound.sender
        sender.stop_began()
        self._settling = True  # a turn that begins from now on is written as it begins
        try:
            # those being answered, those waiting behind another turn, and the texts
            # (pairing codes): those that asked for their conversation in that order (as
            # they would have gone out), then the others in the order they came
            in_flight: list[tuple[TurnProgress, AgentTurn | str]] = [
                *((p, t) for t, p in [*self._active.values(), *self._queued.values()]),
                *((p, to) for to, p in self._texts.values()),
            ]
            for progress, what in sorted(in_flight, key=_going_order):
                if progress.journal is None:
                    progress.journal = (
                        self._cut.journal(what, progress)
                        if isinstance(what, AgentTurn)
                        else self._cut.journal_text(what, progress)
                    )
            await finish_or_cut(self.tasks, grace_s, self.clock, [sender])
        finally:
            self._settling = False
            sender.stop_began(False)

    @property
    def journals_now(self) -> bool:
        """Whether a turn that begins now is written to the outbox as it begins."""
        return self.journal_every_turn or self._settling

    async def wait_idle(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


def _files_that_went(files: Sequence[OutboundFile], names: Sequence[str]) -> list[OutboundFile]:
    """The files of a reply that went out, from their names (``files_sent``): they go in
    the reply's order, one refused skipped."""
    went: list[OutboundFile] = []
    left = iter(files)
    for name in names:
        went.extend(itertools.islice((f for f in left if f.name == name), 1))
    return went


def _going_order(entry: tuple[TurnProgress, AgentTurn | str]) -> tuple[bool, int, int]:
    """Where a turn or text in flight stands in the order things go out."""
    progress = entry[0]
    queued = progress.plan.queued
    return (queued is None, queued or 0, progress.order)
