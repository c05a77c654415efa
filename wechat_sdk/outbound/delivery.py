"""Delivery: one message to WeChat, paced, retried when the failure is passing, never twice.

A send that fails *after* the puppet accepted it (:class:`SendOutcomeUnknown`) is not
blindly retried: the account's echo ledger is checked first, because puppets report
the bot's own messages back; if the echo is there, the message went out.

A send the puppet already has is never cut in the middle. A send is awaited plainly in
the task that sends; once a stop begins (:meth:`Sender.stop_began`), sends are shielded
tasks, and the stop waits for the sends already under way (:meth:`Sender.sends_landed`)
before it cancels anything. So when the sending task is cancelled (a stop whose grace
period ran out), the one send the puppet has is let finish, for up to
:data:`CUT_SEND_WAIT_S`, and whether the message went out is known (:class:`SendCut`). A
cancellation while waiting (pacing, a retry's backoff) just stops: that message did not go
out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Coroutine, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from wechat_sdk.clock import Clock
from wechat_sdk.echoes import EchoLedger, file_key, text_key
from wechat_sdk.events import GatewayEvents
from wechat_sdk.outbound.pacing import Pacer
from wechat_sdk.puppet import (
    HoldsEventsBack,
    OutboundFile,
    Puppet,
    PuppetError,
    SendError,
    SendOutcomeUnknown,
    WindowClosed,
)

__all__ = [
    "CUT_SEND_WAIT_S",
    "DeliveryFailed",
    "DeliveryStats",
    "SendCut",
    "Sender",
    "finish_or_cut",
    "is_proactive",
    "proactive",
]

log = logging.getLogger("wechat_sdk.outbound")

MAX_ATTEMPTS = 5
BACKOFF_START_S = 1.0
BACKOFF_CAP_S = 30.0
#: Seconds of a live event stream after a send whose outcome is unknown with no echo seen,
#: after which it did not go out.
ECHO_WAIT_S = 3.0
#: Seconds a silent stream is waited for before such a send is given up (not sent again).
ECHO_EVIDENCE_MAX_S = 90.0
#: Seconds (of the gateway's clock: real time under ``gateway run``) a send already handed
#: to the puppet may still take when its task is cancelled; after that it is abandoned and
#: its outcome is unknown.
CUT_SEND_WAIT_S = 30.0

# a context variable: the send reaches a puppet (or the cluster's fence around it) through
# the Puppet protocol, which has no room for it
_PROACTIVE: ContextVar[bool] = ContextVar("wechat_sdk_proactive_send", default=False)


@contextlib.contextmanager
def proactive(caller_waits: bool = True) -> Iterator[None]:
    """The sends made inside are proactive (``Gateway.send``, the HTTP API, a pairing
    notice): their caller waits for the answer, so what would hold a send back (a
    cluster's lease not confirmed: :mod:`wechat_sdk.cluster.fence`) holds it only so
    long. ``caller_waits=False``: a reply's sends (they wait as long as it takes)."""
    token = _PROACTIVE.set(caller_waits)
    try:
        yield
    finally:
        _PROACTIVE.reset(token)


def is_proactive() -> bool:
    """Whether the send under way is a proactive one (see :func:`proactive`)."""
    return _PROACTIVE.get()


class SendCut(asyncio.CancelledError):
    """The sending task was cancelled while the puppet had the message; the send was let
    finish first.

    ``outcome`` is ``"sent"`` (the message went out: it counts as sent) or ``"uncertain"``
    (the puppet could not say: the message is never sent again). A plain
    :class:`asyncio.CancelledError` out of a send means the message did not go out.
    """

    def __init__(self, outcome: Literal["sent", "uncertain"]) -> None:
        super().__init__(f"cancelled after the send ({outcome})")
        self.outcome: Literal["sent", "uncertain"] = outcome


class DeliveryFailed(Exception):
    """A message could not be delivered (a permanent error, or retries ran out).

    ``code`` says why (``send_failed_permanent``, ``retries_exhausted``, ``too_large``,
    ``fetch_failed``, ``bad_file``, ``not_logged_in``...). ``sent`` is the text of the same
    reply that did go out before the failure, ``files`` the names of its files that did
    (the outbound pipeline fills them in).
    """

    def __init__(self, message: str, *, code: str, sent: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.sent = sent
        self.files: list[str] = []


@dataclass
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    last_error: str | None = None
    last_outbound: float | None = None


class Sender:
    """Sends single messages for one account: pacing, retries, echo checks."""

    def __init__(
        self,
        puppet: Puppet,
        clock: Clock,
        pacer: Pacer,
        echoes: EchoLedger,
        account_id: str,
        *,
        logged_in: asyncio.Event | None = None,
        on_failure: Callable[[str], None] | None = None,
        events: GatewayEvents | None = None,
    ) -> None:
        self.puppet = puppet
        self.events = events or GatewayEvents()
        self.clock = clock
        self.pacer = pacer
        self.echoes = echoes
        self.account_id = account_id
        self.stats = DeliveryStats()
        #: called with the error text of every message given up on, when it happens (the
        #: account keeps its ``last_error`` in the order errors really occurred)
        self.on_failure = on_failure
        #: set while the account is logged in (the connection keeps it): a send waits for
        #: it, so replies outlast a logout and go out after the next login
        self.logged_in = logged_in
        #: a message a closed reply window refused is kept by the caller for the user's
        #: next message (the outbound pipeline sets it when it has a place for them): it
        #: is raised as ``window_closed`` without being given up (no log line, event or
        #: count of a failure here)
        self.window_kept = False
        #: a stop is running: sends from now on are shielded tasks
        self._stopping = False
        #: sends awaited in their own task (begun before the stop), and, while a stop
        #: waits for them, the event set when there is none
        self._plain_sends = 0
        self._plain_sends_landed: asyncio.Event | None = None

    def stop_began(self, stopping: bool = True) -> None:
        """A stop begins (``True``) or is over (``False``): while it runs, each send is a
        task of its own under :func:`asyncio.shield`, so that cutting the sending task
        lets the send finish (up to :data:`CUT_SEND_WAIT_S`) and its outcome is known."""
        self._stopping = stopping

    async def sends_landed(self, within_s: float = CUT_SEND_WAIT_S) -> None:
        """Wait, up to ``within_s``, until no send begun before the stop is under way (a
        stop cancels the sending tasks only after this)."""
        if self._plain_sends == 0:
            return
        self._plain_sends_landed = asyncio.Event()
        landed = asyncio.ensure_future(self._plain_sends_landed.wait())
        waited = asyncio.ensure_future(self.clock.sleep(within_s))
        try:
            await asyncio.wait({landed, waited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            landed.cancel()
            waited.cancel()
            self._plain_sends_landed = None

    async def send_text(
        self,
        conversation_id: str,
        text: str,
        mention_ids: tuple[str, ...] = (),
        *,
        going: Callable[[], None] | None = None,
        wait_for_login: bool = True,
    ) -> None:
        """Send a text. ``going`` is called right before each attempt hands it to the
        puppet (after pacing). With the account logged out, the text waits for the next
        login, or with ``wait_for_login=False`` (a proactive send) fails at once (code
        ``not_logged_in``)."""
        with proactive(not wait_for_login):
            await self._deliver(
                conversation_id, text_key(text), text, None, mention_ids, going, wait_for_login
            )

    async def send_file(
        self,
        conversation_id: str,
        file: OutboundFile,
        *,
        going: Callable[[], None] | None = None,
        wait_for_login: bool = True,
    ) -> None:
        """Send a file (``going`` and ``wait_for_login`` as for :meth:`send_text`)."""
        with proactive(not wait_for_login):
            await self._deliver(
                conversation_id, file_key(file.name), None, file, (), going, wait_for_login
            )

    async def _deliver(
        self,
        conversation_id: str,
        key: str,
        text: str | None,
        file: OutboundFile | None,
        mention_ids: tuple[str, ...],
        going: Callable[[], None] | None,
        wait_for_login: bool = True,
    ) -> None:
        backoff = BACKOFF_START_S
        attempt = 0
        while True:
            attempt += 1
            if self.logged_in is not None and not self.logged_in.is_set():
                if not wait_for_login:
                    raise self._not_logged_in(conversation_id)
                await self.logged_in.wait()  # logged out: kept until the account is back
            await self.pacer.turn(conversation_id)
            started = self.clock.now()
            retry_after: float | None = None
            if going is not None:
                try:
                    going()
                except DeliveryFailed as exc:
                    # the store could not mark it as being sent: not sent now, kept for
                    # the next start (its own line says so), so no message given up (no
                    # delivery.failed) but counted as one not sent
                    self._counted(conversation_id, str(exc))
                    raise
            try:
                if file is not None:
                    call = self.puppet.send_file(conversation_id, file)
                else:
                    assert text is not None
                    call = self.puppet.send_text(conversation_id, text, mention_ids)
                await self._uncut(call, conversation_id, key, started)
            except SendOutcomeUnknown as exc:
                # the puppet may have accepted it: look for its echo before trying again
                try:
                    echoed = await self._echoed(conversation_id, key, started)
                except asyncio.CancelledError:
                    self._uncertain(conversation_id, "cancelled while looking for its echo")
                    raise SendCut("uncertain") from None
                if echoed:
                    log.info(
                        "send outcome unknown but echo seen: delivered once account=%s to=%s",
                        self.account_id,
                        conversation_id,
                    )
                    self._ok()
                    return
                if echoed is None:  # no evidence either way: never sent a second time
                    raise self.failure(
                        conversation_id,
                        "the send's outcome is unknown and the event stream was silent "
                        "meanwhile, so its echo could not be looked for: not sent again "
                        "(it may or may not have gone out)",
                        "outcome_unknown",
                    ) from exc
                error, code = str(exc) or "send outcome unknown", "outcome_unknown"
            except SendError as exc:
                if exc.code == "not_logged_in" and self.logged_in is not None:
                    # the puppet is not logged in, whatever the events said (a logout
                    # lost on a silent link, a link waiting to reconnect): wait for the
                    # next login, which sets it again; no attempt is used up
                    self.logged_in.clear()
                    if not wait_for_login:
                        raise self._not_logged_in(conversation_id) from exc
                    log.info(
                        "not logged in: the message waits for the next login account=%s to=%s",
                        self.account_id,
                        conversation_id,
                    )
                    attempt -= 1
                    continue
                if isinstance(exc, WindowClosed) and self.window_kept:
                    raise DeliveryFailed(str(exc), code=exc.code) from exc
                if not exc.transient:
                    raise self.failure(conversation_id, str(exc), exc.code) from exc
                error, code, retry_after = str(exc), exc.code, exc.retry_after
            except PuppetError as exc:
                error, code = str(exc) or type(exc).__name__, "puppet_error"
            else:
                self._ok()
                return
            if attempt == MAX_ATTEMPTS:
                raise self.failure(
                    conversation_id,
                    f"gave up after {MAX_ATTEMPTS} attempts: {error}",
                    "retries_exhausted",
                )
            # a rate limit's retry_after is a floor for this wait; the backoff goes on
            wait = backoff if retry_after is None else max(backoff, retry_after)
            self._retrying(conversation_id, attempt, error, code, wait)
            await self.clock.sleep(wait)
            backoff = min(backoff * 2, BACKOFF_CAP_S)

    async def _uncut(
        self, call: Coroutine[Any, Any, Any], conversation_id: str, key: str, started: float
    ) -> Any:
        """Await the puppet's send and return its result; if this task is cancelled
        meanwhile (a stop), let the send end first (for up to CUT_SEND_WAIT_S) and raise
        :class:`SendCut` with its outcome (or a plain CancelledError when it surely did
        not go out)."""
        if not self._stopping:
            # the common case: the send is awaited here, and the puppet's own timeouts
            # (asyncio.timeout, wait_for) stay its own. A stop waits for it to land
            # (sends_landed) before it cancels this task.
            self._plain_sends += 1
            try:
                return await self._noted(call)
            except asyncio.CancelledError:
                # cut anyway: the stop waited CUT_SEND_WAIT_S and it had not landed
                self._uncertain(conversation_id, f"still sending after {CUT_SEND_WAIT_S:g} s")
                raise SendCut("uncertain") from None
            finally:
                self._plain_sends -= 1
                if self._plain_sends == 0 and self._plain_sends_landed is not None:
                    self._plain_sends_landed.set()
        # a stop is running: the send is a task of its own, so a cancellation of this
        # task never reaches it
        send = asyncio.ensure_future(self._noted(call))
        try:
            return await asyncio.shield(send)
        except asyncio.CancelledError:
            outcome = await self._cut_send_outcome(send, conversation_id, key, started)
            if outcome == "unsent":
                raise
            raise SendCut(outcome) from None

    async def _noted(self, call: Coroutine[Any, Any, Any]) -> Any:
        """The send, and the id it returned noted in the echo ledger at once (before the
        echo can be read), so that the echo is known without loading it."""
        sent_id = await call
        self.echoes.sent(sent_id if isinstance(sent_id, str) else None)
        return sent_id

    async def _cut_send_outcome(
        self, send: asyncio.Future[Any], conversation_id: str, key: str, started: float
    ) -> Literal["sent", "uncertain", "unsent"]:
        if not send.done():
            waited = asyncio.ensure_future(self.clock.sleep(CUT_SEND_WAIT_S))
            try:
                await asyncio.wait({send, waited}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                pass  # cancelled again: stop waiting; what is known now is the outcome
            finally:
                waited.cancel()
        if not send.done():
            send.cancel()
            self._uncertain(conversation_id, f"still sending after {CUT_SEND_WAIT_S:g} s")
            return "uncertain"
        if send.cancelled():
            self._uncertain(conversation_id, "the puppet's send was cancelled")
            return "uncertain"
        exc = send.exception()
        if exc is None or (
            isinstance(exc, SendOutcomeUnknown)
            and self.echoes.seen_since(conversation_id, key, started)
        ):
            self._ok()
            return "sent"
        if isinstance(exc, SendOutcomeUnknown) or not isinstance(exc, PuppetError):
            self._uncertain(conversation_id, str(exc) or type(exc).__name__)
            return "uncertain"
        return "unsent"  # a SendError or another PuppetError: it did not go out

    def _uncertain(self, conversation_id: str, why: str) -> None:
        log.warning(
            "send cut by a stop may or may not have gone out (%s): not kept, never sent "
            "twice account=%s to=%s reason=outcome_unknown",
            why,
            self.account_id,
            conversation_id,
        )

    async def _echoed(self, conversation_id: str, key: str, since: float) -> bool | None:
        """Settle a send whose outcome is unknown by evidence, never by a timer alone.

        True: its echo came back (it went out). False: the event stream went on for
        ECHO_WAIT_S after the send and no echo came (it did not go out: the echo would
        have come first). None: no evidence either way, because the stream was silent
        and broke (reconnected), or stayed silent for ECHO_EVIDENCE_MAX_S.
        """
        generation, events = self.echoes.stream_position()
        waited = 0.0
        while True:
            if self.echoes.seen_since(conversation_id, key, since):
                return True
            now_generation, now_events = self.echoes.stream_position()
            if now_generation != generation:
                return None  # the stream broke meanwhile: what it carried is gone
            if waited >= ECHO_WAIT_S and now_events > events and not self._held_back():
                return False
            if waited >= ECHO_EVIDENCE_MAX_S:
                return None
            await self.clock.sleep(0.5)
            waited += 0.5

    def _held_back(self) -> bool:
        """An event that came before the ones seen since is still held back by the
        puppet: the echo may be that one (its events are not in the stream's order)."""
        puppet = self.puppet
        return isinstance(puppet, HoldsEventsBack) and puppet.events_held_back() > 0

    def _ok(self) -> None:
        self.stats.sent += 1
        self.stats.last_outbound = self.clock.now()

    def _retrying(
        self, conversation_id: str, attempt: int, error: str, code: str, wait: float
    ) -> None:
        self.stats.retried += 1
        log.warning(
            "send failed (attempt %d/%d), retrying in %.1f s: %s account=%s to=%s reason=%s",
            attempt,
            MAX_ATTEMPTS,
            wait,
            error,
            self.account_id,
            conversation_id,
            code,
        )

    def _not_logged_in(self, conversation_id: str) -> DeliveryFailed:
        # a proactive send's caller waits for its answer: it is not kept for a next login
        return self.failure(
            conversation_id,
            "the account is not logged in (logged out, or waiting for a login): "
            "not sent, and not kept for the next login",
            "not_logged_in",
        )

    def failure(self, conversation_id: str, error: str, code: str) -> DeliveryFailed:
        """Record a message that will not be delivered; returns the error to raise.

        Also used by the outbound pipeline for messages refused before sending (a file
        over the cap, a voice message without its duration), so status counts them too.
        """
        self._counted(conversation_id, error)
        log.error(
            "send failed for good: %s account=%s to=%s reason=%s",
            error,
            self.account_id,
            conversation_id,
            code,
        )
        self.events.delivery_failed(
            self.account_id, conversation_id=conversation_id, reason=code, error=error
        )
        return DeliveryFailed(error, code=code)

    def _counted(self, conversation_id: str, error: str) -> None:
        """A message not sent, in the account's status: ``send_failures``, ``last_error``."""
        self.stats.failed += 1
        self.stats.last_error = f"send to {conversation_id} failed: {error}"
        if self.on_failure is not None:
            self.on_failure(self.stats.last_error)


async def finish_or_cut(
    tasks: Collection[asyncio.Future[Any]], grace_s: float, clock: Clock, senders: list[Sender]
) -> None:
    """A stop's end for ``tasks`` that send through ``senders``: they, and those added to
    ``tasks`` meanwhile (a live set whose tasks leave it when done may be given), are let
    finish for up to ``grace_s`` (clock time); then each sender's send under way is let
    land (:meth:`Sender.sends_landed`), so that whether it went out is known, and the
    tasks still running are cancelled and awaited. The caller says
    :meth:`Sender.stop_began` around it."""
    if not tasks:
        return
    grace = asyncio.ensure_future(clock.sleep(grace_s))
    try:
        # those that begin meanwhile (a message taken during the grace) get it too
        while not grace.done() and (running := [t for t in tasks if not t.done()]):
            finished = asyncio.ensure_future(asyncio.wait(running))
            try:
                await asyncio.wait({finished, grace}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                finished.cancel()
    finally:
        grace.cancel()
    if all(t.done() for t in tasks):
        return
    await asyncio.gather(*(sender.sends_landed() for sender in senders))
    # read again after each round: one may have begun while the sends landed
    while cut := [t for t in tasks if not t.done()]:
        for task in cut:
            task.cancel()
        await asyncio.gather(*cut, return_exceptions=True)
