"""The connection: one account's puppet started, logged in, its events read, reconnected.

starting -> waiting_for_scan -> ready -> (reconnecting -> ready)* -> stopped
                               \\-> logged_out (needs a new scan)    \\-> failed

Liveness is checked here, once: no event at all (not even a heartbeat) for
HEARTBEAT_TIMEOUT_S means the link is dead, and the puppet is restarted. A message event
goes through the inbound pipeline, journaled in the outbox from before its dedupe mark
until the pipeline ends (what a kill leaves there is taken through it again at the next
start, once ready); a turn that comes out of it is handed to the turns, which answer it in
a task of its own: nothing here waits for an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wechat_sdk.agent import AgentTurn
from wechat_sdk.clock import BACKGROUND, Clock
from wechat_sdk.config.accounts import ResolvedAccount
from wechat_sdk.echoes import EchoLedger
from wechat_sdk.events import GatewayEvents
from wechat_sdk.gateway.kept import KeptWork
from wechat_sdk.gateway.outbox import message_id_of
from wechat_sdk.gateway.qr import qr_page_url, save_qr_png, show_qr
from wechat_sdk.gateway.status import AccountStatus, Lifecycle
from wechat_sdk.gateway.turns import Turns
from wechat_sdk.gateway.verify_code import ASKED, WRONG, CodePrompt, cli_command
from wechat_sdk.inbound.pipeline import Drop, InboundPipeline
from wechat_sdk.logtext import shown
from wechat_sdk.puppet import (
    ErrorEvent,
    HeartbeatEvent,
    LoginEvent,
    LogoutEvent,
    Message,
    MessageEvent,
    Puppet,
    PuppetEvent,
    ReadyEvent,
    ScanEvent,
    ScanStatus,
    TakesVerifyCode,
    VerifyCodeEvent,
)
from wechat_sdk.stores.base import OutboxItem

__all__ = ["HEARTBEAT_TIMEOUT_S", "INTAKE_RETRY_S", "Backoff", "Connection"]

HEARTBEAT_TIMEOUT_S = 60.0
STABLE_AFTER_S = 300.0
#: the waits before a message whose inbound steps raised is tried again (a store
#: unreachable for a while: a Redis failover, a full disk); after the last, it is dropped
INTAKE_RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)


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


class Connection:
    """Runs one account's puppet until stopped."""

    def __init__(
        self,
        *,
        account: ResolvedAccount,
        puppet: Puppet,
        clock: Clock,
        inbound: InboundPipeline,
        echoes: EchoLedger,
        turns: Turns,
        kept: KeptWork,
        mark_position: Callable[[], int],
        logged_in: asyncio.Event,
        status: AccountStatus,
        rng: random.Random,
        state_dir: Path | None,
        show_terminal_qr: bool,
        log: logging.LoggerAdapter[logging.Logger],
        events: GatewayEvents | None = None,
    ) -> None:
        self.account = account
        self.events = events or GatewayEvents()
        self.puppet = puppet
        self.clock = clock
        self.inbound = inbound
        self.echoes = echoes
        self.turns = turns
        #: the outbox room: each message is journaled there while in the pipeline
        self.kept = kept
        #: what the last process left in the pipeline, taken through it again once ready
        self._arrived: list[OutboxItem] = []
        #: messages whose inbound steps raised, by id: each waits to be tried again (the
        #: task of its next try, and the message across its tries)
        self._taking_in_later: dict[str, tuple[asyncio.Task[None], _Intake]] = {}
        #: set while the puppet is ready (not reconnecting, not logged out): a try waits
        #: for it, as the steps need the puppet (a download, a look-up)
        self._up = asyncio.Event()
        #: messages the last process left journaled whose mark failed at the start
        self._unmarked: set[str] = set()
        #: messages the last process left journaled that copy one answered before (their
        #: mark is an earlier delivery's): dropped when they are taken up
        self._copies: set[str] = set()
        #: messages whose tries a stop ended (journaled, for the next start)
        self._tries_ended: set[str] = set()
        self.mark_position = mark_position
        #: set while logged in: sends wait for it (replies outlast a logout)
        self.logged_in = logged_in
        self.status = status
        inbound.on_error = self._error
        self.backoff = Backoff(rng)
        self.state_dir = state_dir
        self.show_terminal_qr = show_terminal_qr
        self.log = log
        #: set once the account is ready (kept work waits for it)
        self.ready = asyncio.Event()
        self.stopping = False
        self._qr_timeouts = 0
        self._logged_out = False
        #: the account was ready since its last login, and whether a QR code asked for
        #: after that (its session ended without a logout) was told as session_expired
        self._was_ready = False
        self._expiry_told = False
        #: account.ready was told for this login (a QR code or a logout starts another)
        self._ready_told = False
        self._ready_at: float | None = None
        #: clock time the consumer started waiting for the next event (None: handling one)
        self._waiting_since: float | None = None
        self._link_dead = False
        #: asks a person for the number the phone shows, when the login waits for it
        #: (the terminal, under ``gateway run``); None: the control plane only
        self.code_prompt: CodePrompt | None = None

    def _error(self, why: str) -> None:
        """Something went wrong that the account goes on after: its last error, cut to
        what a status shows (a peer or a puppet can make it long)."""
        self.status.last_error = shown(why, 500)

    def set_lifecycle(self, lifecycle: Lifecycle, detail: str = "") -> None:
        if self.status.lifecycle != lifecycle or self.status.detail != detail:
            self.status.lifecycle = lifecycle
            self.status.detail = detail
            self.log.info("account %s is %s", self.account.id, self.status.state)

    async def run(self) -> None:
        """Start the puppet and read its events, reconnecting, until stopped or failed."""
        self._arrived = self.kept.take_arrived()
        self._unmarked.clear()
        self._tries_ended.clear()  # (what they were for is in _arrived now)
        self._copies.clear()
        for item in self._arrived:  # marked before the puppet starts: a copy is a duplicate
            message_id = message_id_of(item) or ""
            try:
                # (its own delivery's mark, journaled with its claim, is not: an earlier
                # copy's is; an entry of a build before claims is taken in, as it was)
                if self.inbound.mark_seen(message_id, item.claim or "") and item.claim:
                    self._copies.add(message_id)
            except Exception as exc:  # (marked when it is taken in)
                self._unmarked.add(message_id)
                self.log.error(
                    "could not mark message %s as seen: %s", shown(item.turn), shown(exc, 300)
                )
        try:
            await self._run()
        finally:
            self.stop_taking_in()

    def stop_taking_in(self) -> None:
        """End the tries waiting or under way (a stop): what they were for stays
        journaled, for the next start (one the store would not journal is journaled
        now, if it will); a copy WeChat delivers meanwhile is a duplicate."""
        refused: Exception | None = None
        for message_id, (task, intake) in self._taking_in_later.items():
            task.cancel()
            self._tries_ended.add(message_id)
            # (not one its last try gave up: dropped, being said so)
            if intake.entry is None and intake.tries <= len(INTAKE_RETRY_S):
                refused = self._journal_at_stop(intake, refused)
        self._taking_in_later.clear()

    def _journal_at_stop(self, intake: _Intake, refused: Exception | None) -> Exception | None:
        """A stop ends the tries of a message the store would not journal: it is
        journaled now, and checked, as its next try would have begun (the store may
        answer again by now), so that the next start takes it in; Wechaty never delivers
        it again. One the store still refuses is lost: said once, by its id (never its
        text). Once the store refused one at this stop (``refused``), the rest are not
        tried: a store that hangs would hold the stop for its timeout at each."""
        message = intake.message
        try:
            if refused is not None:
                raise refused
            new = self._journal_and_check(intake)
        except Exception as exc:
            if intake.entry is not None:
                return exc  # journaled, not checked: the next start marks it, takes it in
            self.log.error(
                "could not keep message %s from %s for the next start: %s (the store "
                "refused its journal at each try: lost, unless WeChat delivers it again) "
                "reason=intake_lost",
                shown(message.id),
                shown(message.talker_id),
                shown(f"{type(exc).__name__}: {exc}", 200),
            )
            return exc
        if not new:  # answered before: nothing to keep
            self.inbound.dropped(message.id, Drop("duplicate"))
            if intake.entry is not None:
                self.kept.message_done(intake.entry)
        return None

    async def _run(self) -> None:
        first = True
        while not self.stopping:
            self.set_lifecycle("starting" if first else "reconnecting")
            first = False
            try:
                self.echoes.connected()
                await self.puppet.start()
                await self._consume()
            except asyncio.CancelledError:
                raise
            except _LinkDead:
                self.log.warning("no heartbeat for %.0f s: reconnecting", HEARTBEAT_TIMEOUT_S)
                self._error("heartbeat timeout")
            except _LoginFailed:
                self.set_lifecycle("failed", "login timed out")
                with contextlib.suppress(Exception):
                    await self.puppet.stop()
                return
            except Exception as exc:  # a broken link or a puppet bug: reconnect
                self._error(f"{type(exc).__name__}: {exc}")
                self.log.warning("puppet error: %s", shown(exc, 300))
            finally:
                self._up.clear()  # (until the next ReadyEvent)
            if self.stopping:
                return
            with contextlib.suppress(Exception):
                await self.puppet.stop()
            if self._ready_at is not None and self.clock.now() - self._ready_at > STABLE_AFTER_S:
                self.backoff.reset()
            delay = self.backoff.next_delay()
            self.status.reconnects += 1
            self.set_lifecycle("reconnecting")
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
                    if not self.stopping:
                        self.log.warning("event stream ended")
                        self._error("connection lost")
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
        self.echoes.heard()
        if isinstance(event, MessageEvent):
            await self._on_message(event.message_id)
        elif isinstance(event, ScanEvent):
            self._on_scan(event)
        elif isinstance(event, VerifyCodeEvent):
            self._on_verify_code(event)
        elif isinstance(event, LoginEvent):
            await self._on_login(event)
        elif isinstance(event, ReadyEvent):
            self._ready_at = self.clock.now()
            self.set_lifecycle("ready")
            self.ready.set()  # kept work goes out now
            self._up.set()
            self._was_ready = True
            if not self._ready_told:  # once per login, not after each reconnect
                self._ready_told = True
                self.events.account_ready(
                    self.account.id, self.status.user_id, self.status.user_name
                )
            arrived, self._arrived = self._arrived, []
            for item in arrived:  # left in the pipeline by the last process
                await self._on_message(message_id_of(item) or "", journaled=item)
        elif isinstance(event, LogoutEvent):
            self.logged_in.clear()
            self._up.clear()
            self._logged_out = True
            self._ready_told = False
            self.status.user_id = None
            self.set_lifecycle("logged_out", event.reason)
            self.log.warning(
                "logged out%s: scan a new QR code to log in again",
                f" ({shown(event.reason, 200)})" if event.reason else "",
            )
            if "expired" in event.reason.lower():  # (iLink's -14: not the user's doing)
                self.events.account_session_expired(self.account.id, qr_url=None)
            else:
                self.events.account_logged_out(self.account.id, reason=event.reason)
        elif isinstance(event, ErrorEvent):
            self._error(event.message)
            self.log.warning("puppet reported an error: %s", shown(event.message, 300))
        elif isinstance(event, HeartbeatEvent):
            pass

    def _on_verify_code(self, event: VerifyCodeEvent) -> None:
        """The login waits for the number the phone shows: the state says so, the log
        says where to give it, and the terminal (under ``gateway run``) asks for it."""
        account = self.account.id
        if event.state == "blocked":
            self._error("too many wrong numbers: a new QR code follows")
            self.log.warning("too many wrong numbers: the QR code is blocked; a new one follows")
            if self.code_prompt is not None:
                self.code_prompt.cancel(account)
            return
        wrong = event.state == "wrong"
        self.set_lifecycle("waiting_for_scan", WRONG if wrong else ASKED)
        self.log.warning(
            "%sthe phone shows a number: enter it%s, or give it with: %s "
            "(or POST /v1/accounts/%s/login/verify-code)",
            "wrong number: " if wrong else "",
            " here" if self.code_prompt is not None else "",
            cli_command(account, self.state_dir),
            account,
        )
        if self.code_prompt is not None and isinstance(self.puppet, TakesVerifyCode):
            self.code_prompt.ask(account, self.puppet, wrong=wrong)

    def _on_scan(self, event: ScanEvent) -> None:
        self.log.info("[WeChat] QR Code status: %d", int(event.status))
        if self.code_prompt is not None:  # the login moved on: no number asked any more
            self.code_prompt.cancel(self.account.id)
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
            self._up.clear()  # a QR code to scan: not ready (tries wait for the login)
            url = qr_page_url(event.qrcode)
            self.status.qr_url = url
            self.log.info("[WeChat] Scan QR Code at: %s", url)
            self._ready_told = False  # a new login follows
            self.events.account_qr(self.account.id, qr_url=url)
            if self._was_ready and not self._logged_out and not self._expiry_told:
                # logged in before, asked to scan again, no logout seen: the session ended
                self._expiry_told = True
                self.events.account_session_expired(self.account.id, qr_url=url)
            if self.state_dir is not None:
                try:
                    path = save_qr_png(event.qrcode, self.state_dir / f"qr-{self.account.id}.png")
                    self.log.info("QR code saved to %s", path)
                except OSError as exc:
                    self.log.warning("could not save the QR code PNG: %s", exc)
            if self.account.settings.qrCode and self.show_terminal_qr:
                show_qr(event.qrcode)
        if not self._logged_out:
            self.set_lifecycle("waiting_for_scan")

    async def _on_login(self, event: LoginEvent) -> None:
        self._qr_timeouts = 0
        self._logged_out = False
        self._expiry_told = False
        self.status.qr_url = None
        self.status.user_id = event.contact_id
        try:
            self.status.user_name = (await self.puppet.contact(event.contact_id)).name
        except Exception:
            self.status.user_name = None
        self.echoes.logged_in(event.contact_id)
        self.inbound.own_accounts.logged_in(self.account.id, event.contact_id)
        self.inbound.connected(self.clock.now())
        self.logged_in.set()
        self.log.info(
            "logged in as %s (%s)", shown(self.status.user_name or "?"), shown(event.contact_id)
        )

    async def _on_message(self, message_id: str, journaled: OutboxItem | None = None) -> None:
        """Take a message through the pipeline; ``journaled``: one the last process left
        in it (journaled in the outbox), taken through it again."""
        if journaled is None and (
            message_id in self._taking_in_later  # WeChat delivering it again meanwhile
            or message_id in self._tries_ended  # (a stop ended its tries: journaled)
            or any(message_id_of(i) == message_id for i in self._arrived)  # (once ready)
        ):
            self.inbound.dropped(message_id, Drop("duplicate", "to be taken in again"))
            return
        if journaled is not None and message_id in self._copies:
            self._copies.discard(message_id)
            drop = Drop("duplicate", "a copy of a message answered before")
            await self._taken_in(message_id, journaled, self.inbound.dropped(message_id, drop))
            return
        loaded = await self.inbound.drop_self(message_id)
        if isinstance(loaded, Drop):
            await self._taken_in(message_id, journaled, self.inbound.dropped(message_id, loaded))
            return
        intake = _Intake(loaded, journaled, marked=journaled is not None)
        if journaled is not None:  # (its delivery's claim; "" from a build before claims)
            intake.claim = journaled.claim or ""
            intake.marked = message_id not in self._unmarked
        await self._take_in(intake)

    async def _take_in(self, intake: _Intake) -> None:
        """The inbound steps, once more. A step that raises (the store unreachable, a bug)
        leaves the message journaled, to be tried again (:data:`INTAKE_RETRY_S`), as does
        a turn the store would not let stand for it; a cancellation (a stop, a kill)
        leaves it journaled too."""
        message = intake.message
        result: AgentTurn | Drop
        try:
            if self._journal_and_check(intake):
                result = await self.inbound.go_through(message, again=True)
            else:
                result = self.inbound.dropped(message.id, Drop("duplicate"))
        except Exception as exc:
            await self._take_in_later(intake, f"{type(exc).__name__}: {exc}")
            return
        if not await self._taken_in(message.id, intake.entry, result):
            await self._take_in_later(intake, "the store would not let its turn stand for it")
        elif isinstance(result, Drop) and message.room_id is None and result.reason in _WROTE:
            # (not answered, but their message opened their reply window: what waits
            # for it goes, a pairing code, an owner's notice)
            self.turns.send_waiting_soon(message.talker_id)

    def _journal_and_check(self, intake: _Intake) -> bool:
        """A try's first part: the message journaled (if it is not yet), then its dedupe
        mark checked and recorded (if it is not yet). False when it is a duplicate;
        raises what the store raised."""
        message = intake.message
        if intake.entry is None and intake.written is not None:
            # the write that raised may have reached the store: its entry, not another
            intake.entry = self.kept.journaled(intake.written)
        if intake.entry is None:  # before its dedupe mark: a kill from here on leaves it
            intake.written = self.kept.journal_entry(message, intake.claim)
            intake.entry = self.kept.write_entry(intake.written)
        # (a try's own earlier check may have recorded the mark, then raised, or the last
        # process's: the claim tells it from another delivery's; an entry of a build
        # before claims has none, and is taken in, as it was)
        if not intake.marked and self.inbound.mark_seen(message.id, intake.claim) and intake.claim:
            return False
        self._unmarked.discard(message.id)
        intake.marked = True
        return True

    async def _take_in_later(self, intake: _Intake, why: str) -> None:
        """A pass through the steps failed: the message is tried again after a while, in
        a task of its own (the events go on; WeChat delivering it again meanwhile is a
        duplicate), until it has had its tries. The task stays known until its pass ends,
        so that a stop cancels it wherever it is."""
        message = intake.message
        intake.tries += 1
        if intake.tries > len(INTAKE_RETRY_S):
            self.log.error(
                "could not take message %s from %s in: %s (%d tries: dropped) reason=intake_failed",
                shown(message.id),
                shown(message.talker_id),
                shown(why, 200),
                intake.tries,
            )
            drop = self.inbound.dropped(message.id, Drop("intake_failed", why))
            await self._taken_in(message.id, intake.entry, drop)
            return
        delay = INTAKE_RETRY_S[intake.tries - 1]
        self._error(f"could not take a message in: {why}")
        self.log.warning(
            "could not take message %s from %s in: %s (%s; tried again in %.0f s) "
            "reason=intake_retry",
            shown(message.id),
            shown(message.talker_id),
            shown(why, 200),
            "journaled" if intake.entry is not None else "not journaled: the store refused it",
            delay,
        )

        async def again() -> None:
            me = asyncio.current_task()
            try:
                await self.clock.sleep(delay)
                await self._up.wait()
                await self._take_in(intake)
            finally:  # (unless a next try took its place)
                held = self._taking_in_later.get(message.id)
                if held is not None and held[0] is me:
                    del self._taking_in_later[message.id]

        task = asyncio.get_running_loop().create_task(again())
        self._taking_in_later[message.id] = (task, intake)

    async def _taken_in(
        self, message_id: str, item: OutboxItem | None, result: AgentTurn | Drop
    ) -> bool:
        """The message is through the steps: dropped, or a turn to answer. False when the
        store would not let the turn stand for it and nothing else does (it stays
        journaled: to be tried again)."""
        if isinstance(result, Drop):
            # sent in tasks (the reading of events goes on); journaled, where they are,
            # before the message's own entry goes (a kill between: nothing lost)
            for to, text in result.replies:
                self.turns.send_soon(to, text, pairing_code=result.pairing_code)
            if item is not None:
                self.kept.message_done(item)
            if result.reason not in ("self", "unreadable"):
                self.status.last_inbound = self.clock.now()
            if self.events.wanted:
                await self._tell_drop(message_id, result)
            return True
        self.status.last_inbound = self.clock.now()
        # the reply's sends need this message's dedupe mark (and its taking out of the
        # outbox) durable, not later ones
        begun = self.turns.answer(result, self.mark_position, item)
        if begun != "answering":  # (one the turn's journal stands for: the next start)
            return begun == "kept"
        self.events.message_received(
            self.account.id,
            message_id=result.message_id,
            chat_type=result.chat_type,
            sender_id=result.sender_id,
            sender_name=result.sender_name,
            room_id=result.room_id,
            text=result.text,
            decision="answered",
        )
        return True

    async def _tell_drop(self, message_id: str, drop: Drop) -> None:
        """The events of a dropped message: message.received with its reason, and
        pairing.requested when it got its sender a new pairing code. The bot's own
        messages, a duplicate and an unreadable one are no news."""
        if drop.reason == "pairing_required" and drop.replies:
            sender = drop.replies[0][0]  # (the code goes to the sender first)
            try:
                request = self.inbound.pairing.store.get_request_for_sender(
                    self.account.pairing_id, sender
                )
            except Exception:  # (news only: the code went out)
                request = None
            if request is not None:
                self.events.pairing_requested(
                    self.account.id,
                    code=request.code,
                    sender_id=request.sender_id,
                    sender_name=request.sender_name,
                    expires_at=request.expires_at,
                )
        if drop.reason in ("self", "duplicate", "unreadable") or not self.events.wants(
            "message.received"
        ):
            return
        try:
            message = await self.puppet.message(message_id)  # (loaded by the pipeline)
        except Exception:
            return
        sender_name = message.talker_id
        with contextlib.suppress(Exception):
            sender_name = (await self.puppet.contact(message.talker_id)).name
        self.events.message_received(
            self.account.id,
            message_id=message.id,
            chat_type="group" if message.room_id is not None else "direct",
            sender_id=message.talker_id,
            sender_name=sender_name,
            room_id=message.room_id,
            text=message.text,
            decision="dropped",
            reason=drop.reason,
        )


#: the reasons a direct message is dropped that leave it a new message of the user's all
#: the same (one that opens their reply window, on iLink): not a copy, not history
_WROTE = frozenset({"dm_disabled", "dm_not_allowed", "pairing_required"})


class _LoginFailed(Exception):
    pass


@dataclass
class _Intake:
    """A message on its way in, across its tries."""

    message: Message
    #: its journal entry, once in the store
    entry: OutboxItem | None
    #: past its dedupe check: this delivery's mark (or the last process's) is recorded,
    #: so the check is left out (it would call the message a duplicate of itself); a
    #: delivery not past it is checked (a message answered before is a duplicate)
    marked: bool
    tries: int = 0
    #: the entry a journal write was to make (found in the store if it raised after it)
    written: OutboxItem | None = None
    #: this delivery's claim on its dedupe mark, the same at each try
    claim: str = field(default_factory=lambda: secrets.token_hex(8))
