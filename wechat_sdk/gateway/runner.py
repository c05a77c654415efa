"""One account's life: start the puppet, log in, receive, answer, reconnect.

starting -> waiting_for_scan -> ready -> (reconnecting -> ready)* -> stopped
                               \\-> logged_out (needs a new scan)    \\-> failed
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from wechat_sdk.agent import Agent, AgentTurn, HistoryEntry, Reply, resolve_agent_result
from wechat_sdk.clock import BACKGROUND, Clock
from wechat_sdk.config.accounts import ResolvedAccount
from wechat_sdk.gateway.qr import qr_page_url, save_qr_png, show_qr
from wechat_sdk.gateway.status import AccountStatus
from wechat_sdk.inbound.history import HistoryBook
from wechat_sdk.inbound.pipeline import Drop, InboundPipeline
from wechat_sdk.outbound.delivery import REPLY_TO_MARK, DeliveryFailed
from wechat_sdk.outbound.pipeline import Outbound
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
        self.backoff = Backoff(rng)
        self.status = AccountStatus(account=account.id, lifecycle="stopped")
        self.log = logging.LoggerAdapter(
            logging.getLogger("wechat_sdk.gateway"), {"account": account.id}
        )
        self._task: asyncio.Task[None] | None = None
        self._turns: set[asyncio.Task[None]] = set()
        self._conv_locks: dict[str, asyncio.Lock] = {}
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
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"account:{self.account.id}"
        )

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop receiving; let in-flight replies finish for up to ``grace_s`` (clock time).

        A reply still going out after that is cut short: what was sent is kept in
        history, so the next turn sees it, and the message is not answered again after
        a restart (it is in the dedupe store).
        """
        self._stopping = True
        if self._turns:
            turns: asyncio.Future[Any] = asyncio.ensure_future(
                asyncio.gather(*self._turns, return_exceptions=True)
            )
            grace: asyncio.Future[Any] = asyncio.ensure_future(self.clock.sleep(grace_s))
            try:
                await asyncio.wait({turns, grace}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                grace.cancel()
        cut = list(self._turns)
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
        try:
            message = await self.puppet.message(message_id)
        except Exception as exc:
            self.log.warning("could not load message %s: %s (skipped)", message_id, exc)
            return
        if message.talker_id != self.puppet.self_id:
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
        lock = self._conv_locks.get(conversation)
        if lock is None:
            lock = self._conv_locks[conversation] = asyncio.Lock()
        async with lock:  # one turn at a time per conversation keeps history in order
            # filled as each message goes out: what WeChat got is known even when the
            # reply fails partway (a later chunk or file, or a stream that raised)
            parts: list[str] = []
            try:
                reply = await resolve_agent_result(self.agent(turn))
                if reply is not None:
                    await self.outbound.deliver(conversation, reply, sent=parts)
            except DeliveryFailed:
                pass  # the sender logged it and recorded it as last_error (on_failure)
            except asyncio.CancelledError:
                # the gateway is stopping and the grace period ran out
                self.log.warning(
                    "stopped before the whole reply to %s went out (%d message(s) sent; "
                    "the rest is dropped, not sent again after a restart)",
                    conversation,
                    len(parts),
                )
                self._record_dm(turn, parts)
                raise
            except Exception as exc:
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

    async def wait_idle(self) -> None:
        while self._turns:
            await asyncio.gather(*list(self._turns), return_exceptions=True)


class _LoginFailed(Exception):
    pass
