"""One account's life: start the puppet, log in, receive, answer, reconnect.

starting -> waiting_for_scan -> ready -> (reconnecting -> ready)* -> stopped
                               \\-> logged_out (needs a new scan)    \\-> failed

A stop lets the turns in flight finish for a grace period; a turn still running after
that is cut, and what is left of it goes to the store's outbox (the messages of its reply
not sent yet, or the turn itself when the agent had not answered). The next start sends
the kept messages once the account is ready, before anything new goes to their
conversation, and then asks the agent again about the kept turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wechat_sdk.agent import Agent, AgentTurn, HistoryEntry, Reply, resolve_agent_result
from wechat_sdk.clock import BACKGROUND, Clock
from wechat_sdk.config.accounts import ResolvedAccount
from wechat_sdk.gateway.outbox import (
    OUTBOX_MAX_AGE_S,
    kept_messages,
    kept_turn,
    message_of,
    turn_from_json,
)
from wechat_sdk.gateway.qr import qr_page_url, save_qr_png, show_qr
from wechat_sdk.gateway.status import AccountStatus
from wechat_sdk.inbound.history import HistoryBook
from wechat_sdk.inbound.pipeline import Drop, InboundPipeline
from wechat_sdk.keyed_locks import KeyedLocks
from wechat_sdk.outbound.delivery import REPLY_TO_MARK, DeliveryFailed, SendCut
from wechat_sdk.outbound.pipeline import Outbound, OutboundMessage
from wechat_sdk.puppet import (
    ErrorEvent,
    HeartbeatEvent,
    LoginEvent,
    LogoutEvent,
    MessageEvent,
    Puppet,
    PuppetEvent,
    ReadyEvent,
    ScanEvent,
    ScanStatus,
)
from wechat_sdk.stores.base import OutboxItem, OutboxStore

__all__ = ["AccountRunner", "Backoff"]

HEARTBEAT_TIMEOUT_S = 60.0
STABLE_AFTER_S = 300.0


class Backoff:
    """Exponential backoff with jitter: 1 s, x2, capped at 5 min; reset when stable."""

    def __init__(
        self, rng: random.Random, *, start: float = 1.0, factor: float = 2.0, cap: float = 300.0
    ) -> None:
        self.rng = rng
        self.start = start
        self.factor = factor
        self.cap = cap
        self.attempt = 0

    def next_delay(self) -> float:
        base = min(self.cap, self.start * self.factor**self.attempt)
        self.attempt += 1
        return base * self.rng.uniform(0.8, 1.2) if base < self.cap else base

    def reset(self) -> None:
        self.attempt = 0


class _LinkDead(Exception):
    """No event (not even a heartbeat) for HEARTBEAT_TIMEOUT_S."""


class _WatchedStream:
    """A streaming agent's reply, noting whether it said anything and whether it ended."""

    def __init__(self, source: AsyncIterator[str]) -> None:
        self._source = source
        self.produced = False
        self.ended = False

    def __aiter__(self) -> _WatchedStream:
        return self

    async def __anext__(self) -> str:
        try:
            piece = await self._source.__anext__()
        except StopAsyncIteration:
            self.ended = True
            raise
        if not self.produced and piece.strip():
            self.produced = True
        return piece


@dataclass
class _TurnProgress:
    """How far a turn got: what a stop that cuts it keeps."""

    #: the outbox item of a kept turn asked again after a restart
    kept: OutboxItem | None = None
    #: the agent returned (a reply, a stream, or nothing)
    answered: bool = False
    stream: _WatchedStream | None = None
    #: text messages that went out
    sent: list[str] = field(default_factory=list)
    #: messages of the reply not sent yet, when the delivery was cut
    unsent: list[OutboundMessage] = field(default_factory=list)


class AccountRunner:
    """Runs one enabled account until stopped."""

    def __init__(
        self,
        *,
        account: ResolvedAccount,
        puppet: Puppet,
        agent: Agent,
        clock: Clock,
        inbound: InboundPipeline,
        outbound: Outbound,
        history: HistoryBook,
        state_dir: Path | None,
        rng: random.Random,
        show_terminal_qr: bool = True,
        outbox: OutboxStore | None = None,
    ) -> None:
        self.account = account
        self.puppet = puppet
        self.agent = agent
        self.clock = clock
        self.inbound = inbound
        self.outbound = outbound
        self.history = history
        self.state_dir = state_dir
        self.show_terminal_qr = show_terminal_qr
        #: where a stop keeps unfinished work (None: the store has no outbox, it is dropped)
        self.outbox = outbox
        self.backoff = Backoff(rng)
        self.status = AccountStatus(account=account.id, lifecycle="stopped")
        self.log = logging.LoggerAdapter(
            logging.getLogger("wechat_sdk.gateway"), {"account": account.id}
        )
        self._task: asyncio.Task[None] | None = None
        self._turns: set[asyncio.Task[None]] = set()
        self._conv_locks = KeyedLocks()
        #: kept work of the last stop being taken up (joins _turns once the account is ready)
        self._kept: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()  # the account was ready since the last start()
        self._stopping = False
        self._qr_timeouts = 0
        self._logged_out = False
        self._ready_at: float | None = None
        #: clock time the consumer started waiting for the next event (None: handling one)
        self._waiting_since: float | None = None
        self._link_dead = False
        #: the store's dedupe mark position (see SqliteStore.mark_position), if it has one
        self.mark_position: Callable[[], int] | None = None
        # send errors are recorded when they happen, so that an older one can never
        # overwrite a newer agent error at the next status refresh
        self.outbound.sender.on_failure = self._record_error

    def _record_error(self, error: str) -> None:
        self.status.last_error = error

    # ------------------------------------------------------------ control

    def start(self) -> None:
        self._stopping = False
        self._ready = asyncio.Event()
        self._take_up_kept()  # before any new message can hold a conversation
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"account:{self.account.id}"
        )

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop receiving; let in-flight replies finish for up to ``grace_s`` (clock time).

        A turn still running after that is cut short. What was sent is kept in DM
        history, and the message is not answered from scratch after a restart (it is in
        the dedupe store). What is left goes to the store's outbox, when it has one: the
        messages of the reply not sent yet (a send the puppet already had is let finish),
        or the turn itself when the agent had not answered yet.
        """
        self._stopping = True
        for t in self._kept - self._turns:
            t.cancel()  # kept work still waiting for the login: nothing of it has started
        if self._turns:
            turns: asyncio.Future[Any] = asyncio.ensure_future(
                asyncio.gather(*self._turns, return_exceptions=True)
            )
            grace: asyncio.Future[Any] = asyncio.ensure_future(self.clock.sleep(grace_s))
            try:
                await asyncio.wait({turns, grace}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                grace.cancel()
        cut = list(self._turns | self._kept)
        for t in cut:
            t.cancel()
        if cut:
            await asyncio.gather(*cut, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.puppet.stop()
        close = getattr(self.puppet, "close", None)  # adapters holding a process or socket
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
        if self.status.lifecycle != "failed":
            self._set("stopped")

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    def refresh_status(self) -> AccountStatus:
        s = self.status
        stats = self.outbound.sender.stats
        s.queue_depth = self.outbound.queue_depth
        s.sent = stats.sent
        s.send_failures = stats.failed
        s.last_outbound = stats.last_outbound
        s.pending_pairing = len(self.inbound.pairing.list(self.account.id))
        s.drops = dict(self.inbound.drops)
        pacing = self.account.settings.pacing
        s.pacing = (
            "off"
            if pacing is False
            else f"{pacing.perSecond:g}/s, burst {pacing.burst}, gap {pacing.chunkGapMs} ms"
        )
        return s

    def _set(self, lifecycle: Any, detail: str = "") -> None:
        if self.status.lifecycle != lifecycle or self.status.detail != detail:
            self.status.lifecycle = lifecycle
            self.status.detail = detail
            self.log.info("account %s is %s", self.account.id, self.status.state)

    # ------------------------------------------------------------ the loop

    async def _run(self) -> None:
        first = True
        while not self._stopping:
            self._set("starting" if first else "reconnecting")
            first = False
            try:
                await self.puppet.start()
                await self._consume()
            except asyncio.CancelledError:
                raise
            except _LinkDead:
                self.log.warning("no heartbeat for %.0f s: reconnecting", HEARTBEAT_TIMEOUT_S)
                self.status.last_error = "heartbeat timeout"
            except _LoginFailed:
                self._set("failed", "login timed out")
                with contextlib.suppress(Exception):
                    await self.puppet.stop()
                return
            except Exception as exc:  # a broken link or a puppet bug: reconnect
                self.status.last_error = f"{type(exc).__name__}: {exc}"
                self.log.warning("puppet error: %s", exc)
            if self._stopping:
                return
            with contextlib.suppress(Exception):
                await self.puppet.stop()
            if self._ready_at is not None and self.clock.now() - self._ready_at > STABLE_AFTER_S:
                self.backoff.reset()
            delay = self.backoff.next_delay()
            self.status.reconnects += 1
            self._set("reconnecting")
            self.log.info("reconnecting in %.1f s (attempt %d)", delay, self.backoff.attempt)
            await self.clock.sleep(delay)

    async def _consume(self) -> None:
        """Handle events until the stream ends; _LinkDead after HEARTBEAT_TIMEOUT_S of silence.

        One watchdog per connection (not one per event): it wakes when the deadline
        of the current wait for an event is due and, if no event came by then, cancels
        this task, which turns the cancellation into _LinkDead. Only the wait for an
        event is watched, never the handling of one, like a per-event timeout.
        """
        events = self.puppet.events()
        iterator = events.__aiter__()
        me = asyncio.current_task()
        assert me is not None
        self._waiting_since = None
        self._link_dead = False
        watchdog = asyncio.get_running_loop().create_task(self._watchdog(me))
        try:
            while True:
                event = await self._next_event(iterator, me)
                if event is None:
                    if not self._stopping:
                        self.log.warning("event stream ended")
                        self.status.last_error = "connection lost"
                    return
                await self._handle(event)
        finally:
            watchdog.cancel()

    async def _next_event(
        self, iterator: AsyncIterator[PuppetEvent], me: asyncio.Task[Any]
    ) -> PuppetEvent | None:
        """The next event (None when the stream ended), or _LinkDead from the watchdog."""
        self._waiting_since = self.clock.now()
        try:
            return await iterator.__anext__()
        except StopAsyncIteration:
            return None
        except asyncio.CancelledError:
            if self._link_dead and me.uncancel() == 0:
                raise _LinkDead from None
            raise  # stop() (or a cancel on top of the watchdog's): really cancelled
        finally:
            self._waiting_since = None

    async def _watchdog(self, consumer: asyncio.Task[Any]) -> None:
        BACKGROUND.set(True)
        while True:
            since = self._waiting_since
            if since is None:  # handling an event: a wait starting later ends later
                await self.clock.sleep(HEARTBEAT_TIMEOUT_S)
                continue
            left = since + HEARTBEAT_TIMEOUT_S - self.clock.now()
            if left > 0:
                await self.clock.sleep(left)
                continue
            self._link_dead = True
            consumer.cancel()
            return

    async def _handle(self, event: PuppetEvent) -> None:
        if isinstance(event, MessageEvent):
            await self._on_message(event.message_id)
        elif isinstance(event, ScanEvent):
            self._on_scan(event)
        elif isinstance(event, LoginEvent):
            await self._on_login(event)
        elif isinstance(event, ReadyEvent):
            self._ready_at = self.clock.now()
            self._set("ready")
            if not self._ready.is_set():
                self._ready.set()  # kept work goes out now, and counts as in flight
                self._turns.update(t for t in self._kept if not t.done())
        elif isinstance(event, LogoutEvent):
            self._logged_out = True
            self.status.user_id = None
            self._set("logged_out", event.reason)
            self.log.warning(
                "logged out%s: scan a new QR code to log in again",
                f" ({event.reason})" if event.reason else "",
            )
        elif isinstance(event, ErrorEvent):
            self.status.last_error = event.message
            self.log.warning("puppet reported an error: %s", event.message)
        elif isinstance(event, HeartbeatEvent):
            pass

    def _on_scan(self, event: ScanEvent) -> None:
        self.log.info("[WeChat] QR Code status: %d", int(event.status))
        if event.status == ScanStatus.TIMEOUT:
            self._qr_timeouts += 1
            if self._qr_timeouts >= self.account.settings.qrMaxTimeouts:
                self.log.error(
                    "login timed out: %d QR codes expired without a scan (qrMaxTimeouts)",
                    self._qr_timeouts,
                )
                raise _LoginFailed
        if event.qrcode and event.status in (
            ScanStatus.WAITING,
            ScanStatus.UNKNOWN,
            ScanStatus.TIMEOUT,
        ):
            url = qr_page_url(event.qrcode)
            self.status.qr_url = url
            self.log.info("[WeChat] Scan QR Code at: %s", url)
            if self.state_dir is not None:
                try:
                    path = save_qr_png(event.qrcode, self.state_dir / f"qr-{self.account.id}.png")
                    self.log.info("QR code saved to %s", path)
                except OSError as exc:
                    self.log.warning("could not save the QR code PNG: %s", exc)
            if self.account.settings.qrCode and self.show_terminal_qr:
                show_qr(event.qrcode)
        if not self._logged_out:
            self._set("waiting_for_scan")

    async def _on_login(self, event: LoginEvent) -> None:
        self._qr_timeouts = 0
        self._logged_out = False
        self.status.qr_url = None
        self.status.user_id = event.contact_id
        try:
            self.status.user_name = (await self.puppet.contact(event.contact_id)).name
        except Exception:
            self.status.user_name = None
        if self.inbound.connected_at is None:
            self.inbound.connected_at = self.clock.now()
        self.log.info("logged in as %s (%s)", self.status.user_name or "?", event.contact_id)

    async def _on_message(self, message_id: str) -> None:
        if self.outbound.sender.take_sent(message_id):  # the echo of a reply: half of all
            self.inbound.own_echo(message_id)
            return
        try:
            message = await self.puppet.message(message_id)
        except Exception as exc:
            self.log.warning("could not load message %s: %s (skipped)", message_id, exc)
            return
        if message.talker_id == self.puppet.self_id:  # the echo of a reply, loaded
            self.inbound.own_message(message)
            return
        self.status.last_inbound = self.clock.now()
        result = await self.inbound.process(message)
        if isinstance(result, Drop):
            return
        # the reply's sends need this message's dedupe mark durable, not later ones
        mark = REPLY_TO_MARK.set(self.mark_position() if self.mark_position else None)
        try:
            task = asyncio.get_running_loop().create_task(self._answer(result))
        finally:
            REPLY_TO_MARK.reset(mark)
        self._turns.add(task)
        task.add_done_callback(self._turns.discard)

    # ------------------------------------------------------------ answering

    async def _answer(self, turn: AgentTurn) -> None:
        conversation = turn.conversation_id
        lock = self._conv_locks.take(conversation)
        progress = _TurnProgress()
        try:
            async with lock:  # one turn at a time per conversation keeps history in order
                await self._reply(turn, progress)
        except asyncio.CancelledError:
            # the gateway is stopping and the grace period ran out (waiting, thinking or
            # sending): keep what is left
            self._keep_cut_turn(turn, progress)
            raise
        finally:
            self._conv_locks.done(conversation)

    async def _reply(self, turn: AgentTurn, progress: _TurnProgress) -> None:
        """Ask the agent and deliver its reply (the conversation's lock is held)."""
        conversation = turn.conversation_id
        # filled as each message goes out: what WeChat got is known even when the
        # reply fails partway (a later chunk or file, or a stream that raised)
        parts = progress.sent
        try:
            reply = await resolve_agent_result(self.agent(turn))
            progress.answered = True
            if reply is not None:
                if not isinstance(reply, Reply):
                    reply = progress.stream = _WatchedStream(reply)
                await self.outbound.deliver(conversation, reply, sent=parts, unsent=progress.unsent)
        except DeliveryFailed:
            pass  # the sender logged it and recorded it as last_error (on_failure)
        except Exception as exc:
            progress.answered = True  # with an error: a stop now has nothing to keep
            self.status.last_error = f"agent error: {type(exc).__name__}: {exc}"
            self.log.exception("agent failed on message %s", turn.message_id)
            notice = self.account.settings.errorNotice
            if notice:
                with contextlib.suppress(DeliveryFailed):
                    await self.outbound.deliver(conversation, Reply(text=notice))
        self._record_dm(turn, parts)

    def _record_dm(self, turn: AgentTurn, parts: list[str]) -> None:
        """Remember a DM turn with what went out of its reply (even if a part failed)."""
        if turn.chat_type != "direct":
            return
        user = HistoryEntry(
            "user", turn.sender_id, turn.sender_name, turn.text, turn.timestamp, turn.message_id
        )
        answer = None
        sent_text = "\n\n".join(parts)
        if sent_text:
            answer = HistoryEntry(
                "assistant",
                self.puppet.self_id or "",
                self.account.display_name,
                sent_text,
                self.clock.now(),
            )
        self.history.record_dm_turn(turn.sender_id, user, answer)

    # ------------------------------------------------------------ kept work (the outbox)

    def _keep_cut_turn(self, turn: AgentTurn, progress: _TurnProgress) -> None:
        """Keep what a stop left of ``turn`` in the outbox (without one, log the loss)."""
        stream = progress.stream
        if not progress.answered or (stream is not None and not stream.produced):
            if not self._keep_turn(turn, progress.kept):
                self._record_dm(turn, [])  # dropped: remembered like an unanswered turn
            return
        conversation = turn.conversation_id
        if stream is not None and not stream.ended:
            self.log.warning(
                "the reply stream to %s was cut: what the agent had not said yet is lost "
                "(what it said is sent or kept)",
                conversation,
            )
        answered = progress.kept
        if answered is not None:  # a kept turn, answered: done with
            self._outbox_write(lambda o: o.delete(answered.id), "a kept turn")
        rest = progress.unsent
        if not rest:
            self.log.info(
                "stopped at the end of the reply to %s (%d message(s) sent, nothing left)",
                conversation,
                len(progress.sent),
            )
        elif self.outbox is None:
            self.log.warning(
                "stopped before the whole reply to %s went out (%d message(s) sent; "
                "the rest is dropped, not sent again after a restart)",
                conversation,
                len(progress.sent),
            )
        else:
            items = kept_messages(turn, rest, self.clock.now())
            if self._outbox_write(lambda o: o.add(items), f"{len(items)} message(s)"):
                self.log.warning(
                    "stopped before the whole reply to %s went out (%d message(s) sent, "
                    "%d kept in the store: they go out after a restart)",
                    conversation,
                    len(progress.sent),
                    len(items),
                )
        self._record_dm(turn, progress.sent)

    def _keep_turn(self, turn: AgentTurn, kept: OutboxItem | None) -> bool:
        """The agent had not answered: keep the turn, to ask again after a restart.
        False when it could not be kept (it is dropped)."""
        if kept is not None:  # a kept turn cut again: it stays kept, as it was
            done = self._outbox_write(lambda o: o.set_state(kept.id, "pending"), "a kept turn")
        elif self.outbox is None:
            self.log.warning(
                "stopped before the agent answered message %s from %s: dropped "
                "(the store has no outbox)",
                turn.message_id,
                turn.sender_id,
            )
            return False
        else:
            item = kept_turn(turn, self.clock.now())
            done = self._outbox_write(lambda o: o.add([item]), "a turn")
        if done:
            self.log.warning(
                "stopped before the agent answered message %s from %s: 1 turn kept in the "
                "store, the agent is asked again after a restart",
                turn.message_id,
                turn.sender_id,
            )
        return done

    def _outbox_write(self, write: Callable[[OutboxStore], object], what: str) -> bool:
        """One outbox write; a failure is logged (what it was about is then lost)."""
        assert self.outbox is not None
        try:
            write(self.outbox)
        except Exception as exc:
            self.log.error("could not keep %s in the store's outbox: %s: dropped", what, exc)
            return False
        return True

    def _take_up_kept(self) -> None:
        """Start on what the last stop kept (at start, before any message is handled).

        Per conversation, one task holds the conversation from now on: once the account
        is ready it sends the kept messages, in order, then asks the agent again about the
        kept turns; new replies to that conversation wait behind it.
        """
        if self.outbox is None:
            return
        try:
            items = self.outbox.items(self.account.id)
        except Exception as exc:
            self.log.error("could not read the store's outbox: %s", exc)
            return
        conversations: dict[str, list[OutboxItem]] = {}
        for item in items:
            if item.state == "sending":
                # the last process ended while sending it (a crash): it may have gone out
                self.log.warning(
                    "kept %s for %s was being sent when the last gateway ended: dropped, "
                    "it may or may not have gone out (never sent twice)",
                    item.kind,
                    item.conversation_id,
                )
                self._outbox_write(functools.partial(_delete, item), "a dropped item")
                continue
            conversations.setdefault(item.conversation_id, []).append(item)
        loop = asyncio.get_running_loop()
        for conversation, kept in conversations.items():
            task = loop.create_task(self._resume(conversation, kept))
            self._kept.add(task)
            task.add_done_callback(self._kept.discard)
            task.add_done_callback(self._turns.discard)
        if conversations:
            turns = sum(len([i for i in c if i.kind == "turn"]) for c in conversations.values())
            self.log.info(
                "kept from the last stop: %d message(s) and %d turn(s), taken up first "
                "once the account is ready",
                sum(len(c) for c in conversations.values()) - turns,
                turns,
            )

    async def _resume(self, conversation: str, items: list[OutboxItem]) -> None:
        """Send one conversation's kept messages, then answer its kept turns."""
        lock = self._conv_locks.take(conversation)
        try:
            async with lock:  # taken at once: no new turn can come before
                await self._resume_locked(conversation, items)
        finally:
            self._conv_locks.done(conversation)

    async def _resume_locked(self, conversation: str, items: list[OutboxItem]) -> None:
        """:meth:`_resume` with the conversation's lock held."""
        await self._ready.wait()
        try:
            messages = [i for i in items if i.kind != "turn"]
            if messages:
                await self._send_kept(conversation, messages)
            turns = []
            for item in items:
                if item.kind == "turn":
                    turn = self._kept_turn(item)
                    if turn is not None:
                        turns.append((turn.timestamp, item.id, turn, item))
            for _, _, turn, item in sorted(turns, key=lambda t: t[:2]):
                await self._rerun(turn, item)
        except Exception as exc:  # a store failure: what is left stays kept
            self.log.error("could not take up the kept work for %s: %s", conversation, exc)

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
        self._outbox_write(lambda o: o.delete(item.id), "an old item")
        return True

    async def _send_kept(self, conversation: str, items: list[OutboxItem]) -> None:
        """Send kept messages in order, paced and retried like any reply."""
        assert self.outbox is not None
        sent: list[str] = []
        try:
            async with self.outbound.replying(conversation):
                for item in items:
                    if self._too_old(item):
                        continue
                    # marked before it goes out: if the process dies while it does, it
                    # is dropped at the next start rather than maybe sent twice
                    self.outbox.set_state(item.id, "sending")
                    try:
                        await self.outbound.send_message(conversation, message_of(item), sent)
                    except DeliveryFailed:
                        pass  # the sender logged it: not kept (like any failed reply)
                    except asyncio.CancelledError as cut:
                        if isinstance(cut, SendCut):  # it went out, or maybe: not again
                            self.outbox.delete(item.id)
                        else:  # it did not go out: still kept, for the next start
                            self.outbox.set_state(item.id, "pending")
                        raise
                    self.outbox.delete(item.id)
        finally:
            if sent and items[0].dm:
                self.history.record_dm_reply(
                    conversation,
                    HistoryEntry(
                        "assistant",
                        self.puppet.self_id or "",
                        self.account.display_name,
                        "\n\n".join(sent),
                        self.clock.now(),
                    ),
                )

    def _kept_turn(self, item: OutboxItem) -> AgentTurn | None:
        if self._too_old(item):
            return None
        try:
            return turn_from_json(item.turn or "", self.inbound.tools)
        except ValueError as exc:
            self.log.error(
                "kept turn for %s cannot be read (%s): dropped", item.conversation_id, exc
            )
            self._outbox_write(lambda o: o.delete(item.id), "an unreadable turn")
            return None

    async def _rerun(self, turn: AgentTurn, item: OutboxItem) -> None:
        """Ask the agent again about a kept turn (the conversation's lock is held)."""
        assert self.outbox is not None
        self.log.info(
            "asking the agent again about message %s from %s (kept at the last stop)",
            turn.message_id,
            turn.sender_id,
        )
        # marked while it runs: if the process dies meanwhile, the next start drops it
        self.outbox.set_state(item.id, "sending")
        progress = _TurnProgress(kept=item)
        try:
            await self._reply(turn, progress)
        except asyncio.CancelledError:
            self._keep_cut_turn(turn, progress)
            raise
        self.outbox.delete(item.id)

    async def wait_idle(self) -> None:
        while self._turns:
            await asyncio.gather(*list(self._turns), return_exceptions=True)


class _LoginFailed(Exception):
    pass


def _delete(item: OutboxItem, outbox: OutboxStore) -> None:
    outbox.delete(item.id)
