"""Kept work: what a stop could not finish, kept in the store's outbox and taken up by the
next start.

A stop lets the turns in flight finish for a grace period; a turn still running after that
is cut, and what is left of it is kept (the messages of its reply not sent yet, or the turn
itself when the agent had not answered). The next start sends the kept messages once the
account is ready, before anything new goes to their conversation, and then asks the agent
again about the kept turns. :mod:`wechat_sdk.gateway.outbox` turns these into rows and back.

Each message is also journaled here while it goes through the inbound steps, from before
its dedupe mark until the steps end (:meth:`KeptWork.write_entry`): a process killed
meanwhile (a media download, a contact look-up) leaves it here, and the next start takes
it through the steps again (:meth:`KeptWork.take_arrived`) instead of losing it to its mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import logging
from collections.abc import Callable, Sequence

from wechat_sdk.agent import AgentTurn, Reply, ToolRegistry
from wechat_sdk.clock import Clock
from wechat_sdk.gateway.outbox import (
    OUTBOX_MAX_AGE_S,
    journaled_message,
    kept_messages,
    kept_turn,
    message_id_of,
    message_of,
    turn_from_json,
)
from wechat_sdk.gateway.turns import Journal, TurnProgress, Turns
from wechat_sdk.inbound.history import HistoryBook
from wechat_sdk.inbound.pipeline import Drop
from wechat_sdk.logtext import shown
from wechat_sdk.outbound.delivery import DeliveryFailed, SendCut
from wechat_sdk.outbound.pipeline import Outbound, OutboundMessage
from wechat_sdk.outbound.window import NOTICE, is_open, without_notice
from wechat_sdk.puppet import Message, OutboundFile
from wechat_sdk.stores.base import LeaseLost, OutboxItem, OutboxStore

__all__ = ["KeptWork"]


class KeptWork:
    """The outbox of one account: keeping what a stop cut, and resuming it."""

    def __init__(
        self,
        *,
        account_id: str,
        outbox: OutboxStore,
        outbound: Outbound,
        history: HistoryBook,
        tools: ToolRegistry,
        recheck: Callable[[AgentTurn], AgentTurn | Drop],
        pairing_pending: Callable[[str], bool],
        clock: Clock,
        log: logging.LoggerAdapter[logging.Logger],
        lease_lost: Callable[[], bool] = lambda: False,
    ) -> None:
        self.account_id = account_id
        self.outbox = outbox
        self.outbound = outbound
        self.history = history
        self.tools = tools
        self.recheck = recheck
        #: whether the pairing request with a code is still pending (its kept texts go)
        self.pairing_pending = pairing_pending
        self.clock = clock
        self.log = log
        #: the codes of pairing requests whose kept texts were dropped (said once each)
        self._gone_codes: set[str] = set()
        #: the account's lease is another gateway's now (a cluster): every write here is
        #: refused, and what the store holds (each turn written as it went) is that
        #: gateway's to take up; said once (see _left_to_holder)
        self.lease_lost = lease_lost
        self._said_left = False
        #: taking up the last stop's work, per conversation, until the account is ready
        self.waiting: set[asyncio.Task[None]] = set()
        #: messages the last process left in the inbound steps, for the connection
        self.arrived: list[OutboxItem] = []

    # ------------------------------------------------------------ messages coming in

    def journal_entry(self, message: Message, claim: str) -> OutboxItem:
        """The journal entry of a message on its way in (not written yet), with its
        delivery's ``claim`` on the dedupe mark it is checked against next."""
        return journaled_message(self.account_id, message, self.clock.now(), claim)

    def write_entry(self, entry: OutboxItem) -> OutboxItem:
        """Write a message's journal entry, before its dedupe mark (raises what the store
        raised: the message then goes no further, and is not marked)."""
        return self.outbox.add([entry])[0]

    def journaled(self, entry: OutboxItem) -> OutboxItem | None:
        """The entry a write of ``entry`` made, if it reached the store before it raised
        (the same message, the same time: not an older entry of the same message, which
        stays for what it was left for); raises what the store raised."""
        for item in self.outbox.items(self.account_id):
            same = item.turn == entry.turn and item.created_at == entry.created_at
            if item.kind == "message" and same:
                return item
        return None

    def message_done(self, item: OutboxItem) -> bool:
        """The message's steps ended: it was dropped, or its turn stands for it now (the
        turn's journal, or its reply). False when the store refused (logged)."""
        return self._take_out(
            item,
            f"message {message_id_of(item)}",
            "it stays there: taken through the inbound steps again, by a try for a turn, "
            "or at the account's next start",
        )

    def take_arrived(self) -> list[OutboxItem]:
        """The messages the last process left in the inbound steps, once (see take_up)."""
        arrived, self.arrived = self.arrived, []
        return arrived

    # ------------------------------------------------------------ keeping

    def keep_text(self, to: str, text: str, pairing_code: str | None = None) -> None:
        """Keep a text a stop cut before it went out (a pairing code, an owner's notice:
        ``pairing_code``, its request's)."""
        item = OutboxItem(
            account_id=self.account_id,
            conversation_id=to,
            kind="text",
            created_at=self.clock.now(),
            text=text,
            pairing_code=pairing_code,
        )
        if self._write(lambda o: o.add([item]), "a message"):
            self.log.warning(
                "stopped before a message to %s went out: kept in the store, it goes out "
                "after a restart",
                to,
            )

    def journal(self, turn: AgentTurn, progress: TurnProgress) -> TurnJournal:
        """Write a turn in flight to the outbox as a stop begins (kept true as it goes on)."""
        return TurnJournal(self, turn, progress, turn.conversation_id)

    def journal_text(self, to: str, progress: TurnProgress) -> TurnJournal:
        """Write a text in flight (see :meth:`Turns.send_soon`) to the outbox as a stop
        begins, as a turn's reply is (its messages once they are known)."""
        return TurnJournal(self, None, progress, to)

    def keep_cut_text(self, to: str, text: str, progress: TurnProgress, handed: bool) -> None:
        """Keep what a stop left of a text (see :meth:`Turns.send_soon`); ``handed``: the
        cut came while the puppet had a message of it."""
        if self.lease_lost():
            self._left_to_holder()
            return
        journal, plan = progress.journal, progress.plan
        if not (handed or progress.sent or plan.pending):  # cut before it began to go out
            if journal is None or not journal.written():
                self.keep_text(to, text, progress.pairing_code)
            return
        if journal is not None:
            journal.cut()
        self._keep_unwritten(to, plan.pending, journal, pairing_code=progress.pairing_code)

    def _keep_unwritten(
        self,
        conversation: str,
        rest: list[OutboundMessage],
        journal: Journal | None,
        turn: AgentTurn | None = None,
        later: list[OutboundMessage] | None = None,
        *,
        pairing_code: str | None = None,
    ) -> bool:
        """Write what a cut left that the journal does not hold (its write refused, or no
        journal), and what a reply window leaves for the user's next message (``later``,
        after it, in the same write); False when the store refused it. ``pairing_code``:
        of a text of a pairing request."""
        if journal is not None and journal.holds_reply():
            return True  # (its rows stand for the whole reply, as written before planning)
        unwritten = [m for m in rest if journal is None or journal.holds(m) is None]
        if not unwritten and not later:
            return True
        now = self.clock.now()
        items = kept_messages(self.account_id, conversation, unwritten, now, turn, pairing_code)
        waiting = self.outbound.waiting
        if later and waiting is not None:
            answers = turn.message_id or None if turn is not None else None
            items += waiting.rows(conversation, later, answers=answers, pairing_code=pairing_code)
        done = self._write(lambda o: o.add(items), f"{len(items)} message(s)")
        if done and later and waiting is not None:
            waiting.kept(conversation, len(later))
        return done

    def keep_cut_turn(self, turn: AgentTurn, progress: TurnProgress, turns: Turns) -> None:
        """Keep what a stop left of ``turn``. A journal (written when the stop began, and
        kept true since) holds it already: only a send cut without having gone out is
        pending again. Without the lease nothing is kept here (see _left_to_holder)."""
        if self.lease_lost():
            self._left_to_holder()
            return
        journal = progress.journal
        stream = progress.stream
        if not progress.answered or (stream is not None and not stream.produced):
            self._keep_asking(turn, progress, turns)
            return
        conversation = turn.conversation_id
        if stream is not None and not stream.ended and not stream.failed:
            self.log.warning(
                "the reply stream to %s was cut: what the agent had not said yet is lost "
                "(what it said is sent or kept)",
                conversation,
            )
        rest = progress.plan.pending
        later: list[OutboundMessage] = []
        waits = 0  # of its messages, those left for the user's next message
        if not progress.plan.began and progress.reply is not None:
            rest, later, waits = self._unplanned(conversation, progress.reply, journal)
        went = len(progress.sent) + len(progress.files_sent)  # (its texts and files)
        if not rest and not waits:
            self.log.info(
                "stopped at the end of the reply to %s (%d message(s) sent, nothing left)",
                conversation,
                went,
            )
        else:
            # what the journal holds is kept already; the rest is written now
            if self._keep_unwritten(conversation, rest, journal, turn, later):
                self.log.warning(
                    "stopped before the whole reply to %s went out (%d message(s) sent, "
                    "%d kept in the store: they go out after a restart%s)",
                    conversation,
                    went,
                    len(rest),
                    f", {waits} more after the user's next message" if waits else "",
                )
            elif not progress.plan.began and not progress.sent:
                # nothing of the reply went out: the turn, kept, stands for it instead
                self._keep_asking(turn, progress, turns)
                return
        # the reply stands for the turn now (a kept turn asked again goes, after the
        # reply's messages are written: see _answered)
        if journal is not None:
            journal.cut()
        elif progress.kept is not None:
            answered = progress.kept
            self._take_out(answered, "a kept turn")
        turns.record_dm(turn, progress.sent, progress.files_sent)

    def _unplanned(
        self, conversation: str, reply: Reply, journal: Journal | None
    ) -> tuple[list[OutboundMessage], list[OutboundMessage], int]:
        """A reply cut before its delivery planned it (it waited for its conversation),
        all of it: as the journal wrote it (where it stands among what else is kept for
        the conversation), else as the delivery would have planned it (a reply window's
        room now, the rest for the user's next message). Returns its messages to keep now,
        those for later, and how many wait."""
        early = journal.unplanned() if journal is not None else []
        if early:
            return early, [], 0
        later: list[OutboundMessage] = []
        rest: list[OutboundMessage] = []
        with contextlib.suppress(DeliveryFailed):  # (no room kept: it said so)
            rest, later = self.outbound.fit(conversation, self.outbound.messages(reply))
        return rest, later, len(later)

    def _keep_asking(self, turn: AgentTurn, progress: TurnProgress, turns: Turns) -> None:
        """Keep the turn, to ask the agent again after a restart (nothing of a reply to it
        went out); dropped when even that is refused (remembered like an unanswered
        turn)."""
        journal = progress.journal
        if journal is not None:
            journal.cut(reply_stands=False)
        if journal is not None and journal.written():
            self._log_kept_turn(turn, progress.answered)
        elif not self._keep_turn(turn, progress.kept, progress.answered):  # (now: see journal)
            turns.record_dm(turn, [])

    def _keep_turn(self, turn: AgentTurn, kept: OutboxItem | None, answered: bool = False) -> bool:
        """Keep the turn, to ask again after a restart (the agent had not answered, or its
        reply could not be kept). False when it could not be kept (it is dropped)."""
        if kept is not None:  # a kept turn cut again: it stays kept, as it was
            done = self._write(lambda o: o.set_state(kept.id, "pending"), "a kept turn")
        else:
            item = kept_turn(turn, self.clock.now())
            done = self._write(lambda o: o.add([item]), "a turn")
        if done:
            self._log_kept_turn(turn, answered)
        return done

    def _log_kept_turn(self, turn: AgentTurn, answered: bool = False) -> None:
        self.log.warning(
            "stopped before the agent answered message %s from %s: 1 turn kept in the "
            "store, the agent is asked again after a restart"
            if not answered
            else "stopped, and the reply to message %s from %s could not be kept in the "
            "store: 1 turn kept instead, the agent is asked again after a restart",
            turn.message_id,
            turn.sender_id,
        )

    def _write(
        self, write: Callable[[OutboxStore], object], what: str, then: str = "dropped"
    ) -> bool:
        """One outbox write; a failure is logged with what then becomes of it (``then``:
        by default it is lost)."""
        try:
            write(self.outbox)
        except LeaseLost:
            self._left_to_holder()
            return False
        except Exception as exc:
            self.log.error("could not keep %s in the store's outbox: %s: %s", what, exc, then)
            return False
        return True

    def _take_out(self, item: OutboxItem, what: str, then: str = "it stays there") -> bool:
        """Delete ``item`` from the outbox; a failure is logged with what then becomes of
        it."""
        try:
            self.outbox.delete(item.id)
        except LeaseLost:
            self._left_to_holder()
            return False
        except Exception as exc:
            self.log.error("could not take %s out of the store's outbox: %s (%s)", what, exc, then)
            return False
        return True

    def _left_to_holder(self) -> None:
        """Said once: the account's lease is another gateway's, so nothing is kept here;
        the store holds the turns in flight as they were last written (on a lease each is
        written as it begins and kept true as it goes), for that gateway."""
        if not self._said_left:
            self._said_left = True
            self.log.warning(
                "stopped without the account's lease: the turns in flight here stay in the "
                "store as they were last written, and the gateway holding the account now "
                "takes them up; nothing more is written here reason=lease_lost"
            )

    # ------------------------------------------------------------ resuming

    def take_up(self, turns: Turns, ready: asyncio.Event) -> None:
        """Start on what the last stop kept (at start, before any message is handled).

        Per conversation, one task holds the conversation from now on: once ``ready`` is
        set it sends the kept messages, in order, then asks the agent again about the kept
        turns; new replies to that conversation wait behind it.
        """
        try:
            items = self.outbox.items(self.account_id)
        except Exception as exc:
            self.log.error("could not read the store's outbox: %s", exc)
            return
        conversations: dict[str, list[OutboxItem]] = {}
        arrived: list[OutboxItem] = []
        for item in items:
            if item.kind == "message":
                arrived.append(item)
                continue
            if item.state == "waiting":
                continue  # for the user's next message (a reply window), not for a start
            if item.state == "sending":
                # the last process ended while sending it (a crash): it may have gone out
                self.log.warning(
                    "kept %s for %s was being sent when the last gateway ended: dropped, "
                    "it may or may not have gone out (never sent twice)",
                    item.kind,
                    item.conversation_id,
                )
                self._take_out(item, "a dropped item")
                continue
            conversations.setdefault(item.conversation_id, []).append(item)
        loop = asyncio.get_running_loop()
        for conversation, kept in conversations.items():
            task = loop.create_task(
                self._resume(turns, ready, conversation, kept, _answered(items))
            )
            self.waiting.add(task)
            task.add_done_callback(self.waiting.discard)
        if conversations:
            turn_count = sum(1 for c in conversations.values() for i in c if i.kind == "turn")
            self.log.info(
                "kept from the last stop: %d message(s) and %d turn(s), taken up first "
                "once the account is ready",
                sum(len(c) for c in conversations.values()) - turn_count,
                turn_count,
            )
        self.arrived = self._arrived(arrived, items)

    def _arrived(self, arrived: list[OutboxItem], items: list[OutboxItem]) -> list[OutboxItem]:
        """The messages to take through the inbound steps again: each once, unless a
        kept turn already stands for it (the process died between writing the turn and
        taking the message out), or its reply (it died between writing the reply and
        taking the message out), or it is too old."""
        done = {message_id_of(i) for i in items if i.kind == "turn"} | _answered(items)
        again: list[OutboxItem] = []
        for item in arrived:
            message_id = message_id_of(item)
            if message_id is None or message_id in done:
                self._take_out(item, "a message's journal")
            elif not self._too_old(item):
                done.add(message_id)
                again.append(item)
        if again:
            self.log.warning(
                "the last process ended while %d message(s) were on their way in: taken "
                "through the inbound steps again once the account is ready",
                len(again),
            )
        return again

    def cancel_waiting(self) -> None:
        """A stop before the login: nothing of the kept work has started."""
        for task in self.waiting:
            task.cancel()

    async def _resume(
        self,
        turns: Turns,
        ready: asyncio.Event,
        conversation: str,
        items: list[OutboxItem],
        answered: set[str],
    ) -> None:
        """Send one conversation's kept messages, then answer its kept turns (but those
        ``answered``: whose reply is kept, waiting for the user's next message included)."""
        async with turns.conversations.hold(conversation):  # at once: no new turn comes first
            await ready.wait()
            task = asyncio.current_task()
            assert task is not None
            self.waiting.discard(task)
            turns.track(task)  # in flight from now on: a stop gives it the grace period
            try:
                messages = [
                    (message_of(i), i)
                    for i in items
                    if i.kind != "turn" and not self._too_old(i) and self._pairing_pending(i)
                ]
                behind = self._behind_waiting(conversation, [i for _, i in messages])
                if behind < len(messages):  # (an earlier reply's rest waits for the user)
                    self._wait([i for _, i in messages[behind:]])
                    messages = messages[:behind]
                if messages:  # (kept within a reply window's room: see keep_cut_turn)
                    await self._send_kept(turns, conversation, messages)
                kept_turns = []
                for item in items:
                    if item.kind == "turn":
                        if message_id_of(item) in answered:
                            self._take_out(item, "an answered turn")
                            continue
                        turn = self._kept_turn(item)
                        if turn is not None:
                            kept_turns.append((turn.timestamp, item.id, turn, item))
                for _, _, turn, item in sorted(kept_turns, key=lambda t: t[:2]):
                    # the user wrote: what an earlier reply window could not take goes
                    # first, as before any turn (Turns._answer)
                    await self.send_waiting(turns, conversation)
                    await self._rerun(turns, turn, item)
            except Exception as exc:  # a store failure: what is left stays kept
                self.log.error("could not take up the kept work for %s: %s", conversation, exc)

    def _behind_waiting(self, conversation: str, items: Sequence[OutboxItem]) -> int:
        """Where, in a conversation's kept messages ``items`` (in order), the first one
        written after a message of another reply that waits for the user's next message
        stands (``len(items)`` when none is): from there on they wait too, behind it, as
        replies to one user go in the order of their turns. (A stop that cut the answer
        to the user's second message, once iLink refused the rest of the first with
        ``ret -2``, kept that answer for the start and the rest for the user.)"""
        waiting = self.outbound.waiting
        if waiting is None or not items or not waiting.has(conversation):
            return len(items)
        waits = waiting.items(conversation)
        for n, item in enumerate(items):
            if any(w.id < item.id and w.turn != item.turn for w in waits):
                return n
        return len(items)

    async def send_waiting(self, turns: Turns, conversation: str, *, answered: bool = True) -> None:
        """The user wrote again: send, in order, what an earlier reply window did not
        take, as far as the window opened by this message takes it (the rest, if any,
        waits again, with the notice that more follows). The conversation is held. Like
        the kept messages a start sends, a pairing text whose request is no longer
        pending is dropped, not sent. A message not ``answered`` (its sender is not let
        in: a stranger, one revoked meanwhile) lets only the pairing texts go: the
        agent's words that wait stay waiting (they are not for someone not let in)."""
        waiting = self.outbound.waiting
        if waiting is None or not waiting.has(conversation):
            return
        window = self.outbound.window(conversation)
        if window is None or not is_open(window, self.clock.now()):
            return
        items = [
            i
            for i in waiting.items(conversation)
            if (answered or i.pairing_code is not None)
            and not self._too_old(i)
            and self._pairing_pending(i)
        ]
        if not items:
            return
        now, _ = self.outbound.fit(conversation, [message_of(i) for i in items], pack=False)
        going: list[tuple[OutboundMessage, OutboxItem | None]] = [
            (m, None if m is NOTICE else items[n]) for n, m in enumerate(now)
        ]
        await self._send_kept(turns, conversation, going)

    def _too_old(self, item: OutboxItem) -> bool:
        age = self.clock.now() - item.created_at
        if age <= OUTBOX_MAX_AGE_S:
            return False
        self.log.warning(
            "kept %s for %s is %.1f h old (more than %g h): dropped, not sent late",
            item.kind,
            item.conversation_id,
            age / 3600,
            OUTBOX_MAX_AGE_S / 3600,
        )
        self._take_out(item, "an old item")
        return True

    def _pairing_pending(self, item: OutboxItem) -> bool:
        """False for a text of a pairing request no longer pending (it expired while the
        gateway was away, or the owner approved or denied it): its code no longer works,
        so it is dropped (the sender gets a new code by writing again), said once a code."""
        code = item.pairing_code
        if code is None or self.pairing_pending(code):
            return True
        if code not in self._gone_codes:
            self._gone_codes.add(code)
            self.log.info(
                "kept messages of pairing request %s not sent: it is no longer pending (it "
                "expired, and the sender gets a new code by writing again; or it was "
                "approved or denied meanwhile) reason=pairing_not_pending",
                code,
            )
        self._take_out(item, "a kept pairing message")
        return False

    async def _send_kept(
        self,
        turns: Turns,
        conversation: str,
        messages: Sequence[tuple[OutboundMessage, OutboxItem | None]],
    ) -> None:
        """Send kept messages in order, paced and retried like any reply; each leaves the
        outbox as it goes (a message with no item, the window's notice, just goes). What
        went of each reply is its ``reply.sent`` event (the rest of a reply a stop cut, or
        an iLink reply window held back)."""
        sent: list[str] = []
        files_sent: list[OutboundFile] = []  # (for history: each file by its kind)
        #: the message each reply answers: the texts and file names of it that went
        went: dict[str, tuple[list[str], list[str]]] = {}
        try:
            async with self.outbound.replying(conversation):
                for n, (message, item) in enumerate(messages):
                    if item is None:
                        with contextlib.suppress(DeliveryFailed):
                            await self.outbound.send_message(conversation, message, [])
                        continue
                    window = self.outbound.window(conversation)
                    closed = window is not None and not is_open(window, self.clock.now())
                    if closed and self._wait([i for _, i in messages[n:]]):
                        return  # the reply window is full: the rest waits for the user
                    # marked as it is handed to the puppet (after pacing): if the process
                    # dies while it goes out, it is dropped at the next start rather than
                    # maybe sent twice
                    state = item.state
                    going = functools.partial(self._going, item)
                    texts, files = went.setdefault(item.turn or "", ([], []))
                    before, files_before = len(sent), len(files)
                    try:
                        await self.outbound.send_message(
                            conversation, message, sent, going=going, files_sent=files
                        )
                    except DeliveryFailed as exc:
                        # (the window closed while it waited for its pacing)
                        if exc.code == "window_closed" and self._wait([i for _, i in messages[n:]]):
                            return
                        if exc.code == "store_failed":  # (not marked: not sent, still kept,
                            return  # as is the rest, in order, for the next time)
                        # (otherwise the sender logged it: not kept, like any failed reply)
                    except asyncio.CancelledError as cut:
                        if isinstance(cut, SendCut):  # it went out, or maybe: not again
                            self.outbox.delete(item.id)
                        else:  # it did not go out: still kept, as it was
                            self.outbox.set_state(item.id, state)
                        raise
                    finally:
                        texts.extend(sent[before:])
                        if message.file is not None and len(files) > files_before:
                            files_sent.append(message.file)
                    self.outbox.delete(item.id)
        finally:
            entry = turns.answer_entry(sent, files_sent)
            if entry is not None and any(item is not None and item.dm for _, item in messages):
                self.history.record_dm_reply(conversation, entry)
            for in_reply_to, (texts, files) in went.items():
                if in_reply_to:  # (a text that answers no message: a pairing code)
                    turns.events.reply_sent(
                        self.account_id,
                        conversation_id=conversation,
                        in_reply_to=in_reply_to,
                        text="\n\n".join(texts),
                        messages=len(texts),
                        files=len(files),
                    )

    def _going(self, item: OutboxItem) -> None:
        """A kept message is handed to the puppet now: marked ``sending`` first. One that
        cannot be marked does not go out (:class:`DeliveryFailed` ``store_failed``): it
        stays kept as it was, with the rest after it, for the next time. A write the
        account's lease refused (:class:`LeaseLost`) is raised as it is: the work here
        ends, and the gateway holding the account now takes up what is kept."""
        try:
            self.outbox.set_state(item.id, "sending")
        except LeaseLost:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.log.error(
                "could not mark a kept message to %s as being sent in the store's outbox "
                "(%s): not sent now; it stays kept, with the rest after it (never twice)",
                item.conversation_id,
                shown(error, 200),
            )
            raise DeliveryFailed(f"not sent: {error}", code="store_failed") from exc

    def _wait(self, items: Sequence[OutboxItem | None]) -> bool:
        """Kept messages a closed reply window refused (iLink: it was full, or a day
        passed while the gateway was down) wait for the user's next message, in order,
        rather than be lost; False when there is no such place (they fail as before)."""
        waiting = self.outbound.waiting
        rows = [i for i in items if i is not None]
        if waiting is None or not rows:
            return False
        conversation = rows[0].conversation_id
        ids = {r.id for r in rows}
        already = [i for i in waiting.items(conversation) if i.id not in ids]
        waits = _without_notice(rows)
        order = _waiting_order(waits, already)
        if order is None and waits != rows:  # (a notice taken off: rewritten in place)
            order = [
                dataclasses.replace(i, state="waiting")
                for i in sorted([*waits, *already], key=lambda i: i.id)
            ]
        then = (
            "left as it was (kept: it goes out at the next start, but for one marked as "
            "being sent, which is dropped then)"
        )
        if order is None:
            done = [
                self._write(functools.partial(_set_waiting, item), "a message", then)
                for item in rows
            ]
        else:  # (what of their replies waits already goes after them: rewritten in order)
            write = functools.partial(_replace, [*rows, *already], order)
            done = [self._write(write, f"{len(order)} message(s)", then)]
        if all(done) and waits:
            waiting.kept(conversation, len(waits))
        return True

    def _kept_turn(self, item: OutboxItem) -> AgentTurn | None:
        if self._too_old(item):
            return None
        try:
            return turn_from_json(item.turn or "", self.tools)
        except ValueError as exc:
            self.log.error(
                "kept turn for %s cannot be read (%s): dropped", item.conversation_id, exc
            )
            self._take_out(item, "an unreadable turn")
            return None

    async def _rerun(self, turns: Turns, turn: AgentTurn, item: OutboxItem) -> None:
        """Ask the agent again about a kept turn (the conversation is held)."""
        self.log.info(
            "asking the agent again about message %s from %s (kept at the last stop)",
            turn.message_id,
            turn.sender_id,
        )
        checked = self.recheck(turn)  # the config may have changed since it was kept
        if isinstance(checked, Drop):
            self.log.warning(
                "kept turn from %s is no longer let in under the config in force: dropped "
                "reason=%s",
                turn.sender_id,
                checked.reason,
            )
            self.outbox.delete(item.id)
            return
        turn = checked
        # marked while it runs: if the process dies meanwhile, the next start drops it
        # (unless it is journaled as it begins: a stop under way, or a lease)
        if not turns.journals_now:
            self.outbox.set_state(item.id, "sending")
        progress = TurnProgress(kept=item)
        try:
            await turns.reply(turn, progress, None)
        except asyncio.CancelledError:
            self.keep_cut_turn(turn, progress, turns)
            raise
        self.outbox.delete(item.id)


def _answered(items: list[OutboxItem]) -> set[str]:
    """The messages whose reply is kept (a kept turn for one of them is answered). A
    turn's reply is written, then its turn item deleted (two writes); a process that died
    between them left both: the reply's messages stand for the turn, which asked again
    would be answered twice."""
    return {i.turn for i in items if i.kind in ("text", "file") and i.turn is not None}


class TurnJournal:
    """A turn in flight as the outbox holds it once a stop began, kept true as it goes on.

    A stop waits for the turns in flight for a grace period; a supervisor may kill the
    process before that ends (``docker stop`` waits 10 s, then SIGKILL). So the turns are
    written when the stop begins: a turn the agent has not answered as a turn to ask
    again, the messages of a reply not sent yet as messages. Then, as the turn goes on,
    each message is marked ``sending`` before it goes out and deleted once it went out
    (an item left ``sending`` by a kill is dropped at the next start: never sent twice),
    and a turn answered meanwhile is replaced by its reply's messages. When the turn ends
    within the grace period, what it left is deleted.
    """

    def __init__(
        self,
        kept: KeptWork,
        turn: AgentTurn | None,
        progress: TurnProgress,
        conversation_id: str,
    ) -> None:
        self.kept = kept
        #: None for a text that answers no turn (its progress is answered from the start)
        self.turn = turn
        self.conversation_id = conversation_id
        self.progress = progress
        self.turn_item: OutboxItem | None = None
        self.items: list[tuple[OutboundMessage, OutboxItem]] = []
        #: the rows it wrote of what a reply window left for the user's next message
        #: (they stay when the turn ends: see refused)
        self.waits: list[OutboxItem] = []
        #: a message of the journal could not be marked ``sending``: nothing more of the
        #: turn goes out (left ``pending``, it could go out twice); what the journal holds
        #: is for the next start
        self.unkept = False
        #: ``items`` are a whole reply's messages written before its delivery planned them
        #: (the delivery's own messages take their rows over: see added)
        self.early = False
        #: ``items`` stand for the whole reply, planned otherwise (see holds_reply)
        self.whole = False
        already = progress.kept  # a kept turn asked again: it is in the outbox already
        stream = progress.stream
        if not progress.answered or (stream is not None and not stream.produced):
            if already is not None:
                self.turn_item = already
                kept._write(lambda o: o.set_state(already.id, "pending"), "a kept turn")
            else:
                self.turn_item = self._add_turn()
        else:
            self.turn_item = already  # its reply now stands for it (deleted once written)
            if not self._add_unplanned():
                # the message with the puppet now may be going out: written ``sending``
                # with the rest (one write: a kill between two would leave it pending)
                self.added(progress.plan.pending, sending=progress.plan.handed)
        progress.plan.watcher = self

    def written(self) -> bool:
        """See :meth:`Journal.written`."""
        return self.turn_item is not None or bool(self.items)

    def _add_turn(self) -> OutboxItem | None:
        assert self.turn is not None, "a text is answered from the start"
        item = kept_turn(self.turn, self.kept.clock.now())
        added: list[OutboxItem] = []
        self.kept._write(lambda o: added.extend(o.add([item])), "a turn")
        return added[0] if added else None

    def answered(self) -> None:
        """The agent answered: its reply's messages stand for the turn from now on (the
        turn item goes once they are written): a whole reply's at once, a stream's as its
        blocks come."""
        self._add_unplanned()

    def _add_unplanned(self) -> bool:
        """A whole reply its delivery has not planned yet (it waits for its dedupe mark,
        or for its conversation, behind another reply): its messages written now, as the
        delivery will plan them; False when there is none."""
        reply = self.progress.reply
        if reply is None or self.progress.plan.began:
            return False
        # (a reply window may pack it otherwise as it is planned: the rows are then
        # swapped for the planned ones, and what waits for the user, in one write)
        # (a text of send_soon, a pairing code's, is cut only between lines)
        whole_lines = self.turn is None
        if self._write_rows(self.kept.outbound.messages(reply, whole_lines=whole_lines)):
            self._drop_turn_item()  # (not written: the turn stands for it until planned)
            self.early = bool(self.items)
        return True

    def unplanned(self) -> list[OutboundMessage]:
        """See :meth:`Journal.unplanned`."""
        return [m for m, _ in self.items] if self.early else []

    def added(
        self,
        messages: Sequence[OutboundMessage],
        later: Sequence[OutboundMessage] = (),
        sending: OutboundMessage | None = None,
    ) -> bool:
        """Messages of the reply to journal (``sending``: the one with the puppet now), and
        those a reply window leaves for the user's next message (``later``), written with
        them in one step, after them (a kill between two writes lost the first part, the
        later one standing for the turn). False when the store refused them."""
        written = self._write_rows(messages, later, sending)
        # the reply stands for the turn from now on, written or not: the turn asked again
        # after a kill would be answered twice (messages not written go out as they come,
        # and only a cut keeps them, see KeptWork.keep_cut_turn)
        self._drop_turn_item()
        return written

    def _write_rows(
        self,
        messages: Sequence[OutboundMessage],
        later: Sequence[OutboundMessage] = (),
        sending: OutboundMessage | None = None,
    ) -> bool:
        """See :meth:`added`; False when the store refused the rows."""
        early: list[tuple[OutboundMessage, OutboxItem]] = []
        if self.early:  # written before the delivery planned them: the same, in order?
            self.early = False
            early, self.items = self.items, []
            if [m for m, _ in early] == list(messages) and not later:
                self.items = [(m, item) for m, (_, item) in zip(messages, early, strict=True)]
                return True
            # planned otherwise (a reply window packed it): those rows are swapped for
            # the planned ones below, in the same write
        if not messages and not later and not early:
            return True
        rows = kept_messages(
            self.kept.account_id if self.turn is None else self.turn.account_id,
            self.conversation_id,
            list(messages),
            self.kept.clock.now(),
            self.turn,
            self.progress.pairing_code,
        )
        rows = [
            dataclasses.replace(row, state="sending") if m is sending else row
            for m, row in zip(messages, rows, strict=True)
        ]
        waiting = self.kept.outbound.waiting
        answers = self.turn.message_id or None if self.turn is not None else None
        if later and waiting is not None:
            rows += waiting.rows(
                self.conversation_id,
                later,
                answers=answers,
                pairing_code=self.progress.pairing_code,
            )
        added: list[OutboxItem] = []
        old = [item for _, item in early]

        def write(outbox: OutboxStore) -> None:
            added.extend(outbox.replace(old, rows) if old else outbox.add(rows))

        if self.kept._write(write, f"{len(rows)} message(s)"):
            self.items.extend(zip(messages, added, strict=False))  # (the journal's own)
            self.waits.extend(added[len(messages) :])
            if later and waiting is not None:
                waiting.kept(self.conversation_id, len(later))
            return True
        if early:
            # the rows written before stay, standing for the whole reply: it does not go
            # out now (after a restart it would go twice), but from them
            self.items, self.unkept, self.whole = early, True, True
        return False

    def going(self, message: OutboundMessage) -> None:
        """The message is handed to the puppet now: marked ``sending`` first. One that
        cannot be marked does not go out (:class:`DeliveryFailed`): left ``pending``, it
        would go out again at the next start."""
        item = self.holds(message)
        if self.unkept:
            error = "an earlier message of the reply could not be marked"
        elif self.turn_item is not None and self.progress.answered:
            # the turn is still in the outbox: the next start would ask the agent again
            self.unkept = True
            error = "the turn's own entry could not be taken out"
        elif item is None:
            return
        else:
            try:
                self.kept.outbox.set_state(item.id, "sending")
                return
            except Exception as exc:
                self.unkept = True
                error = f"{type(exc).__name__}: {exc}"
        self.kept.log.error(
            "could not mark a message of the reply to %s as being sent in the store's "
            "outbox (%s): not sent now; what is kept of the turn goes out after a restart "
            "(never twice)",
            self.conversation_id,
            error,
        )
        raise DeliveryFailed(f"not sent: {error}", code="store_failed")

    def done(self, message: OutboundMessage) -> None:
        item = self.holds(message)
        if item is not None and not self.unkept:  # (unkept: what it holds stays)
            self.items = [(m, i) for m, i in self.items if i is not item]
            self.kept._take_out(item, "a message")

    def refused(
        self, messages: Sequence[OutboundMessage]
    ) -> tuple[list[OutboxItem], list[OutboxItem]] | None:
        """A closed reply window refused the first of ``messages`` (iLink's ``ret -2``
        all along, while the stop waits): the rows of them and of what a reply window
        left for the user's next message, for the delivery to write again, as waiting
        for that message; they are the journal's no more (the turn's end leaves them).
        None when what it holds stays for the next start (a row could not be marked)."""
        if self.unkept:
            return None
        held = [item for m in messages if (item := self.holds(m)) is not None]
        gone = {item.id for item in held}
        self.items = [(m, i) for m, i in self.items if i.id not in gone]
        waits, self.waits = self.waits, []
        return held, waits

    def cut(self, *, reply_stands: bool = True) -> None:
        """The turn was cut: a message whose send was cut without going out (it is still
        in the plan) is pending again; once the agent answered, its reply stands for the
        turn (a kept turn asked again goes), unless it could not be kept
        (``reply_stands`` False: the turn stays, to be asked again)."""
        for _, item in self.items:
            self.kept._write(functools.partial(_set_pending, item), "a message")
        stream = self.progress.stream
        if reply_stands and self.progress.answered and (stream is None or stream.produced):
            self._drop_turn_item()
        elif self.turn_item is not None:  # to be asked again (a kept one was sending)
            self.kept._write(functools.partial(_set_pending, self.turn_item), "a kept turn")
        self.progress.plan.watcher = None

    def close(self) -> None:
        """The turn ended within the grace period: nothing of it stays kept (unless the
        journal could not be kept true: then what it holds did not go out, and stays for
        the next start)."""
        if self.unkept:
            self.progress.plan.watcher = None
            return
        self._drop_turn_item()
        for _, item in self.items:
            self.kept._take_out(item, "a message")
        self.items = []
        self.progress.plan.watcher = None

    def _drop_turn_item(self) -> None:
        """The turn's own item goes (its reply stands for it); one the store would not
        delete stays, and nothing of the reply goes out while it does (see going)."""
        item = self.turn_item
        if item is not None and self.kept._take_out(item, "a kept turn"):
            self.turn_item = None

    def holds(self, message: OutboundMessage) -> OutboxItem | None:
        """The outbox item of ``message``, when the journal holds it."""
        return next((i for m, i in self.items if m is message), None)

    def holds_reply(self) -> bool:
        """See :meth:`Journal.holds_reply`."""
        return self.whole


def _without_notice(rows: list[OutboxItem]) -> list[OutboxItem]:
    """Kept messages ``rows`` as they wait for the user's next message: without the
    notice that more follows that a reply window's packing had ended one with (it did
    not go: the notice ends only the last message that went; one that was only the
    notice is left out). The others as they are."""
    waits: list[OutboxItem] = []
    for row in rows:
        if not row.notice:
            waits.append(row)
            continue
        for bare in without_notice([message_of(row)]):
            waits.append(dataclasses.replace(row, text=bare.text, notice=False))
    return waits


def _waiting_order(rows: list[OutboxItem], already: list[OutboxItem]) -> list[OutboxItem] | None:
    """Kept messages ``rows`` (in order) joining the conversation's messages ``already``
    waiting for the user: all of them as they should wait, when a reply's part already
    waiting must go after its part in ``rows`` (it was written first: a window left it
    for later as the reply went out, and a stop kept the rest); None when setting them
    waiting where they are keeps the order. A part waiting for a reply of none of
    ``rows`` stays where it is relative to theirs."""
    answering = {r.turn for r in rows if r.turn is not None}
    if not any(w.turn in answering for w in already):
        return None
    order: list[OutboxItem] = []
    left = list(already)
    placed: set[str | None] = set()
    for turn, group in itertools.groupby(rows, key=lambda r: r.turn):
        later = next((n for n, w in enumerate(left) if turn is not None and w.turn == turn), None)
        if later is None:  # nothing of its reply waits: after what waits for those before
            while left and left[0].turn in placed:
                order.append(left.pop(0))
        else:
            order += left[:later]
            del left[:later]
        order += group
        placed.add(turn)
    order += left
    if [i.id for i in order] == sorted(i.id for i in (*rows, *already)):
        return None  # (waiting, they go in the order they were written)
    return [dataclasses.replace(i, state="waiting") for i in order]


def _replace(old: list[OutboxItem], new: list[OutboxItem], outbox: OutboxStore) -> None:
    outbox.replace(old, new)


def _set_pending(item: OutboxItem, outbox: OutboxStore) -> None:
    outbox.set_state(item.id, "pending")


def _set_waiting(item: OutboxItem, outbox: OutboxStore) -> None:
    outbox.set_state(item.id, "waiting")
