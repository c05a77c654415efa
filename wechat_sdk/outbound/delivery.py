"""Delivery: one message to WeChat, paced, retried when the failure is passing, never twice.

A send that fails *after* the puppet accepted it (:class:`SendOutcomeUnknown`) is not
blindly retried: the account's self-echo log is checked first, because puppets report
the bot's own messages back; if the echo is there, the message went out.

A send the puppet already has is never cut in the middle: when the sending task is
cancelled (a stop whose grace period ran out), that one send is let finish, for up to
:data:`CUT_SEND_WAIT_S`, so that whether the message went out is known
(:class:`SendCut`). A cancellation while waiting (pacing, a retry's backoff) just stops:
that message did not go out.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from wechat_sdk.clock import Clock
from wechat_sdk.outbound.pacing import Pacer
from wechat_sdk.puppet import OutboundFile, Puppet, PuppetError, SendError, SendOutcomeUnknown

__all__ = [
    "CUT_SEND_WAIT_S",
    "REPLY_TO_MARK",
    "DeliveryFailed",
    "DeliveryStats",
    "EchoLog",
    "SendCut",
    "Sender",
]

log = logging.getLogger("wechat_sdk.outbound")

#: Set while a message is being answered: the dedupe store's mark position right after
#: that message was checked (see ``SqliteStore.mark_position``). None: unknown, so every
#: mark queued so far must be durable before a send.
REPLY_TO_MARK: ContextVar[int | None] = ContextVar("wechat_sdk_reply_to_mark", default=None)

MAX_ATTEMPTS = 5
BACKOFF_START_S = 1.0
BACKOFF_CAP_S = 30.0
ECHO_WAIT_S = 3.0
#: How many ids of sent messages are remembered until their echo comes back (a burst
#: of replies can be sent before the first echo is read: about 1 MB at most).
SENT_IDS_KEPT = 10_000
#: Seconds (of the gateway's clock: real time under ``gateway run``) a send already handed
#: to the puppet may still take when its task is cancelled; after that it is abandoned and
#: its outcome is unknown.
CUT_SEND_WAIT_S = 30.0


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
    ``fetch_failed``, ``bad_file``...). ``sent`` is the text of the same reply that did go
    out before the failure (the outbound pipeline fills it in).
    """

    def __init__(self, message: str, *, code: str, sent: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.sent = sent


@dataclass
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    last_error: str | None = None
    last_outbound: float | None = None


class EchoLog:
    """Recent self-echoes of one account: (conversation, content key, time)."""

    def __init__(self, size: int = 256) -> None:
        self._items: deque[tuple[str, str, float]] = deque(maxlen=size)

    def add(self, conversation_id: str, key: str, at: float) -> None:
        self._items.append((conversation_id, key, at))

    def seen_since(self, conversation_id: str, key: str, since: float) -> bool:
        return any(c == conversation_id and k == key and t >= since for c, k, t in self._items)


_NOT_SENT = object()


def text_key(text: str) -> str:
    return "text:" + text


def file_key(name: str) -> str:
    return "file:" + name


class Sender:
    """Sends single messages for one account: pacing, retries, echo checks."""

    def __init__(
        self, puppet: Puppet, clock: Clock, pacer: Pacer, echo: EchoLog, account_id: str
    ) -> None:
        self.puppet = puppet
        self.clock = clock
        self.pacer = pacer
        self.echo = echo
        self.account_id = account_id
        self.stats = DeliveryStats()
        #: called with the error text of every message given up on, when it happens (the
        #: account runner keeps its ``last_error`` in the order errors really occurred)
        self.on_failure: Callable[[str], None] | None = None
        #: called (and awaited, if it returns an awaitable) right before each message is
        #: handed to the puppet, with the value of :data:`REPLY_TO_MARK`: the gateway makes
        #: the store commit and fsync the dedupe marks up to there, so nothing goes out for
        #: a message before its mark is durable
        self.before_send: Callable[[int | None], Awaitable[None] | None] | None = None
        #: ids of messages sent, as the puppet returned them, until their echo comes back
        #: (the oldest forgotten past SENT_IDS_KEPT): see :meth:`take_sent`
        self.sent_ids: OrderedDict[str, None] = OrderedDict()

    def take_sent(self, message_id: str) -> bool:
        """True (once) if ``message_id`` is a message this sender sent: its echo needs no
        loading, since the send's outcome is known."""
        # (no KeyError raised and caught for every message that is not one: most aren't)
        return self.sent_ids.pop(message_id, _NOT_SENT) is not _NOT_SENT

    async def send_text(
        self, conversation_id: str, text: str, mention_ids: tuple[str, ...] = ()
    ) -> None:
        await self._deliver(conversation_id, text_key(text), text, None, mention_ids)

    async def send_file(self, conversation_id: str, file: OutboundFile) -> None:
        await self._deliver(conversation_id, file_key(file.name), None, file, ())

    async def _deliver(
        self,
        conversation_id: str,
        key: str,
        text: str | None,
        file: OutboundFile | None,
        mention_ids: tuple[str, ...],
    ) -> None:
        backoff = BACKOFF_START_S
        for attempt in range(1, MAX_ATTEMPTS + 1):
            await self.pacer.turn(conversation_id)
            started = self.clock.now()
            retry_after: float | None = None
            if self.before_send is not None:
                durable = self.before_send(REPLY_TO_MARK.get())
                if durable is not None:
                    await durable
            try:
                if file is not None:
                    call = self.puppet.send_file(conversation_id, file)
                else:
                    assert text is not None
                    call = self.puppet.send_text(conversation_id, text, mention_ids)
                sent_id = await self._uncut(call, conversation_id, key, started)
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
                error, code = str(exc) or "send outcome unknown", "outcome_unknown"
            except SendError as exc:
                if not exc.transient:
                    raise self.failure(conversation_id, str(exc), exc.code) from exc
                error, code, retry_after = str(exc), exc.code, exc.retry_after
            except PuppetError as exc:
                error, code = str(exc) or type(exc).__name__, "puppet_error"
            else:
                self._ok()
                if isinstance(sent_id, str) and sent_id:
                    ids = self.sent_ids
                    ids[sent_id] = None
                    if len(ids) > SENT_IDS_KEPT:
                        ids.popitem(last=False)
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
        # the send is a task of its own: a cancellation of this task never reaches it, and
        # the puppet's own timeouts (asyncio.timeout, wait_for) stay its own
        send = asyncio.ensure_future(call)
        try:
            return await asyncio.shield(send)
        except asyncio.CancelledError:
            outcome = await self._cut_send_outcome(send, conversation_id, key, started)
            if outcome == "unsent":
                raise
            raise SendCut(outcome) from None

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
            and self.echo.seen_since(conversation_id, key, started)
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

    async def _echoed(self, conversation_id: str, key: str, since: float) -> bool:
        waited = 0.0
        while True:
            if self.echo.seen_since(conversation_id, key, since):
                return True
            if waited >= ECHO_WAIT_S:
                return False
            await self.clock.sleep(0.5)
            waited += 0.5

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

    def failure(self, conversation_id: str, error: str, code: str) -> DeliveryFailed:
        """Record a message that will not be delivered; returns the error to raise.

        Also used by the outbound pipeline for messages refused before sending (a file
        over the cap, a voice message without its duration), so status counts them too.
        """
        self.stats.failed += 1
        self.stats.last_error = f"send to {conversation_id} failed: {error}"
        if self.on_failure is not None:
            self.on_failure(self.stats.last_error)
        log.error(
            "send failed for good: %s account=%s to=%s reason=%s",
            error,
            self.account_id,
            conversation_id,
            code,
        )
        return DeliveryFailed(error, code=code)
