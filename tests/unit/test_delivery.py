"""The Sender: retries with backoff, permanent errors, the self-echo check, and a send
let finish when its task is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from wechat_sdk.clock import VirtualClock
from wechat_sdk.echoes import EchoLedger, file_key, text_key
from wechat_sdk.outbound.delivery import (
    BACKOFF_CAP_S,
    BACKOFF_START_S,
    CUT_SEND_WAIT_S,
    MAX_ATTEMPTS,
    DeliveryFailed,
    SendCut,
    Sender,
)
from wechat_sdk.outbound.pacing import Pacer
from wechat_sdk.puppet import OutboundFile, PuppetError, SendError, SendOutcomeUnknown

START = 1_700_000_000.0


class FakePuppet:
    """Only what the Sender uses: send_text and send_file, with scripted failures."""

    self_id = "wxid_bot"

    def __init__(self, clock: VirtualClock, echo: EchoLedger | None = None) -> None:
        self.clock = clock
        self.echo = echo
        self.failures: list[Exception] = []
        self.attempts: list[float] = []
        self.delivered: list[tuple[str, str]] = []
        self.echo_lost_sends = True  # a lost reply still echoes (it went out)
        self.send_takes_s = 0.0  # how long WeChat takes to accept a send (virtual time)

    def _attempt(self, conversation_id: str, key: str) -> None:
        self.attempts.append(self.clock.now() - START)
        if self.failures:
            exc = self.failures.pop(0)
            if isinstance(exc, SendOutcomeUnknown) and self.echo_lost_sends:
                self.delivered.append((conversation_id, key))
                if self.echo is not None:
                    self.echo.note(conversation_id, key, self.clock.now())
            raise exc
        self.delivered.append((conversation_id, key))

    async def send_text(
        self, conversation_id: str, text: str, mention_ids: tuple[str, ...] = ()
    ) -> str | None:
        if self.send_takes_s:
            await self.clock.sleep(self.send_takes_s)
        self._attempt(conversation_id, text_key(text))
        self.sent_count = getattr(self, "sent_count", 0) + 1
        return f"msg-text-{self.sent_count}"

    async def send_file(self, conversation_id: str, file: OutboundFile) -> str | None:
        self._attempt(conversation_id, file_key(file.name))
        return "msg-file"


def make(per_second: float | None = None) -> tuple[VirtualClock, FakePuppet, Sender, EchoLedger]:
    clock = VirtualClock(START)
    echo = EchoLedger()
    puppet = FakePuppet(clock, echo)
    sender = Sender(
        puppet,
        clock,
        Pacer(clock, per_second=per_second),
        echo,  # type: ignore[arg-type]
        "default",
    )
    return clock, puppet, sender, echo


async def drive(clock: VirtualClock, coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to the end, moving virtual time whenever it sleeps."""
    task = asyncio.ensure_future(coro)
    while not task.done():
        await clock.run_until_idle()
        await asyncio.sleep(0)
    await task


def transient() -> SendError:
    return SendError("network error", transient=True)


async def test_plain_send() -> None:
    clock, puppet, sender, _ = make()
    await drive(clock, sender.send_text("wxid_a", "hello"))
    assert puppet.delivered == [("wxid_a", "text:hello")]
    assert sender.stats.sent == 1
    assert sender.stats.retried == 0
    assert sender.stats.last_outbound == START


async def test_transient_errors_are_retried_with_doubling_backoff() -> None:
    clock, puppet, sender, _ = make()
    puppet.failures = [transient(), transient(), transient()]
    await drive(clock, sender.send_text("wxid_a", "hello"))
    assert puppet.delivered == [("wxid_a", "text:hello")]
    assert puppet.attempts == pytest.approx([0.0, 1.0, 3.0, 7.0])  # waits 1, 2, 4
    assert sender.stats.retried == 3
    assert sender.stats.sent == 1
    assert sender.stats.failed == 0


async def test_backoff_is_capped() -> None:
    clock, puppet, sender, _ = make()
    puppet.failures = [PuppetError("boom")] * (MAX_ATTEMPTS - 1)
    await drive(clock, sender.send_text("wxid_a", "x"))
    gaps = [b - a for a, b in zip(puppet.attempts, puppet.attempts[1:], strict=False)]
    expected = [min(BACKOFF_START_S * 2**i, BACKOFF_CAP_S) for i in range(MAX_ATTEMPTS - 1)]
    assert gaps == pytest.approx(expected)


async def test_permanent_error_raises_at_once() -> None:
    clock, puppet, sender, _ = make()
    puppet.failures = [SendError("blocked", transient=False, code="send_failed_permanent")]
    with pytest.raises(DeliveryFailed) as info:
        await drive(clock, sender.send_text("wxid_a", "hello"))
    assert info.value.code == "send_failed_permanent"
    assert len(puppet.attempts) == 1
    assert clock.now() == START
    assert sender.stats.failed == 1
    assert sender.stats.retried == 0
    assert sender.stats.last_error is not None and "blocked" in sender.stats.last_error


async def test_retries_run_out() -> None:
    clock, puppet, sender, _ = make()
    puppet.failures = [transient() for _ in range(MAX_ATTEMPTS)]
    with pytest.raises(DeliveryFailed) as info:
        await drive(clock, sender.send_text("wxid_a", "hello"))
    assert info.value.code == "retries_exhausted"
    assert "network error" in str(info.value)
    assert len(puppet.attempts) == MAX_ATTEMPTS
    assert puppet.delivered == []
    assert sender.stats.failed == 1
    assert sender.stats.retried == MAX_ATTEMPTS - 1


async def test_retry_after_is_a_floor_for_the_next_attempt() -> None:
    clock, puppet, sender, _ = make()
    puppet.failures = [SendError("too fast", retry_after=10.0, code="rate_limited"), transient()]
    await drive(clock, sender.send_text("wxid_a", "hello"))
    # 10 s for the rate limit, then the backoff goes on where it was (2 s), not from 10
    assert puppet.attempts == pytest.approx([0.0, 10.0, 12.0])


async def test_outcome_unknown_with_echo_is_not_sent_again() -> None:
    clock, puppet, sender, _ = make()
    puppet.failures = [SendOutcomeUnknown("reply lost")]
    await drive(clock, sender.send_text("wxid_a", "hello"))
    assert puppet.delivered == [("wxid_a", "text:hello")]
    assert len(puppet.attempts) == 1
    assert sender.stats.sent == 1
    assert sender.stats.retried == 0


async def heartbeats(clock: VirtualClock, ledger: EchoLedger) -> None:
    """A live event stream: an event every second."""
    while True:
        await clock.sleep(1)
        ledger.heard()


async def with_a_live_stream(
    clock: VirtualClock, ledger: EchoLedger, coro: Coroutine[Any, Any, None]
) -> None:
    beat = asyncio.ensure_future(heartbeats(clock, ledger))
    try:
        await drive(clock, coro)
    finally:
        beat.cancel()


async def test_outcome_unknown_without_echo_on_a_live_stream_is_retried() -> None:
    clock, puppet, sender, ledger = make()
    puppet.echo_lost_sends = False  # the send really was lost
    puppet.failures = [SendOutcomeUnknown("reply lost")]
    await with_a_live_stream(clock, ledger, sender.send_text("wxid_a", "hello"))
    assert puppet.delivered == [("wxid_a", "text:hello")]
    assert len(puppet.attempts) == 2
    assert sender.stats.retried == 1


async def test_outcome_unknown_on_a_silent_stream_is_never_sent_again() -> None:
    """No event arrives after the send: its echo may be lost with the rest, so a timer
    alone proves nothing. The send is given up, counted as failed, never repeated."""
    clock, puppet, sender, _ = make()
    puppet.echo_lost_sends = False
    puppet.failures = [SendOutcomeUnknown("reply lost")]
    with pytest.raises(DeliveryFailed) as failed:
        await drive(clock, sender.send_text("wxid_a", "hello"))
    assert failed.value.code == "outcome_unknown"
    assert len(puppet.attempts) == 1
    assert sender.stats.sent == 0 and sender.stats.failed == 1


async def test_outcome_unknown_when_the_stream_breaks_is_never_sent_again() -> None:
    clock, puppet, sender, ledger = make()
    puppet.echo_lost_sends = False
    puppet.failures = [SendOutcomeUnknown("reply lost")]

    async def reconnect_then_live() -> None:
        await clock.sleep(1)
        ledger.connected()  # a reconnect: what the old stream carried is gone
        while True:
            await clock.sleep(1)
            ledger.heard()

    stream = asyncio.ensure_future(reconnect_then_live())
    try:
        with pytest.raises(DeliveryFailed) as failed:
            await drive(clock, sender.send_text("wxid_a", "hello"))
    finally:
        stream.cancel()
    assert failed.value.code == "outcome_unknown"
    assert len(puppet.attempts) == 1


async def test_an_old_echo_of_the_same_text_does_not_count() -> None:
    clock, puppet, sender, echo = make()
    echo.note("wxid_a", text_key("ok"), START - 60)  # "ok" went out a minute ago
    puppet.echo_lost_sends = False
    puppet.failures = [SendOutcomeUnknown("reply lost")]
    await with_a_live_stream(clock, echo, sender.send_text("wxid_a", "ok"))
    assert len(puppet.attempts) == 2


async def test_files_use_the_same_rules() -> None:
    clock, puppet, sender, _ = make()
    puppet.failures = [transient(), SendOutcomeUnknown("lost")]
    await drive(
        clock, sender.send_file("wxid_a", OutboundFile(name="a.png", kind="image", data=b"\x89PNG"))
    )
    assert puppet.delivered == [("wxid_a", "file:a.png")]
    assert len(puppet.attempts) == 2


async def test_every_attempt_waits_for_its_pacing_turn() -> None:
    clock, puppet, sender, _ = make(per_second=1.0)
    sender.pacer.burst = 1
    puppet.failures = [transient()]
    await drive(clock, sender.send_text("wxid_a", "a"))
    await drive(clock, sender.send_text("wxid_a", "b"))
    assert sender.pacer.granted == 3
    assert puppet.attempts[0] == 0.0
    assert puppet.attempts[1] >= 1.0


def test_failure_records_status_and_returns_the_error() -> None:
    clock = VirtualClock(START)
    sender = Sender(
        FakePuppet(clock),
        clock,
        Pacer(clock),
        EchoLedger(),  # type: ignore[arg-type]
        "default",
    )
    exc = sender.failure("wxid_a", "voice needs duration_s", "bad_file")
    assert isinstance(exc, DeliveryFailed)
    assert exc.code == "bad_file"
    assert sender.stats.failed == 1
    assert sender.stats.last_error == "send to wxid_a failed: voice needs duration_s"


# ---------------------------------------------------------------- cancelled mid-send


async def cancelled_after(
    clock: VirtualClock, sender: Sender, seconds: float, coro: Coroutine[Any, Any, None]
) -> asyncio.CancelledError | None:
    """Run ``coro`` while a stop runs (``sender.stop_began()``: sends are shielded tasks),
    cancel it ``seconds`` of virtual time in, and let it end: the cancellation it ended
    with (None if it ended first)."""
    sender.stop_began()

    async def run() -> asyncio.CancelledError | None:
        try:
            await coro
        except asyncio.CancelledError as exc:
            return exc
        return None

    task = asyncio.ensure_future(run())
    await clock.advance(seconds)
    task.cancel()
    while not task.done():
        await clock.run_until_idle()
        await asyncio.sleep(0)
    return await task


async def test_a_send_in_flight_when_cancelled_finishes_and_counts_as_sent() -> None:
    clock, puppet, sender, _ = make()
    puppet.send_takes_s = 5.0  # the puppet has the message for 5 s
    cut = await cancelled_after(clock, sender, 2.0, sender.send_text("wxid_a", "hello"))
    assert isinstance(cut, SendCut) and cut.outcome == "sent"
    assert puppet.delivered == [("wxid_a", "text:hello")]  # not cut in the middle
    assert clock.now() - START == pytest.approx(5.0)
    assert sender.stats.sent == 1


async def test_a_cancel_while_waiting_for_pacing_sends_nothing() -> None:
    clock, puppet, sender, _ = make()
    sender.pacer = Pacer(clock, per_second=1.0, burst=1)
    await drive(clock, sender.send_text("wxid_a", "first"))
    cut = await cancelled_after(clock, sender, 0.5, sender.send_text("wxid_a", "second"))
    assert type(cut) is asyncio.CancelledError  # plain: the message did not go out
    assert puppet.delivered == [("wxid_a", "text:first")]
    assert sender.stats.sent == 1


async def test_a_cancel_during_a_retry_backoff_just_stops() -> None:
    clock, puppet, sender, _ = make()
    puppet.failures = [transient()]
    cut = await cancelled_after(clock, sender, 0.5, sender.send_text("wxid_a", "hello"))
    assert type(cut) is asyncio.CancelledError
    assert puppet.delivered == []
    assert len(puppet.attempts) == 1  # no attempt after the cancel


async def test_a_cut_send_that_failed_did_not_go_out_and_is_not_retried() -> None:
    clock, puppet, sender, _ = make()
    puppet.send_takes_s = 5.0
    puppet.failures = [transient()]
    cut = await cancelled_after(clock, sender, 2.0, sender.send_text("wxid_a", "hello"))
    assert type(cut) is asyncio.CancelledError
    assert puppet.delivered == []
    assert len(puppet.attempts) == 1


async def test_a_cut_send_with_an_unknown_outcome_is_uncertain_never_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, puppet, sender, _ = make()
    puppet.send_takes_s = 5.0
    puppet.echo_lost_sends = False
    puppet.failures = [SendOutcomeUnknown("reply lost")]
    cut = await cancelled_after(clock, sender, 2.0, sender.send_text("wxid_a", "hello"))
    assert isinstance(cut, SendCut) and cut.outcome == "uncertain"
    assert len(puppet.attempts) == 1
    assert sender.stats.sent == 0
    assert any("may or may not have gone out" in r.getMessage() for r in caplog.records)


async def test_a_cut_send_with_an_unknown_outcome_and_its_echo_counts_as_sent() -> None:
    clock, puppet, sender, _ = make()
    puppet.send_takes_s = 5.0
    puppet.failures = [SendOutcomeUnknown("reply lost")]  # it went out: its echo is there
    cut = await cancelled_after(clock, sender, 2.0, sender.send_text("wxid_a", "hello"))
    assert isinstance(cut, SendCut) and cut.outcome == "sent"
    assert sender.stats.sent == 1


async def test_a_cancel_while_looking_for_the_echo_is_uncertain() -> None:
    clock, puppet, sender, _ = make()
    puppet.echo_lost_sends = False
    puppet.failures = [SendOutcomeUnknown("reply lost")]
    cut = await cancelled_after(clock, sender, 1.0, sender.send_text("wxid_a", "hello"))
    assert isinstance(cut, SendCut) and cut.outcome == "uncertain"
    assert len(puppet.attempts) == 1


async def test_a_cut_send_is_waited_for_a_bounded_time() -> None:
    clock, puppet, sender, _ = make()
    puppet.send_takes_s = 10 * CUT_SEND_WAIT_S  # the puppet hangs
    cut = await cancelled_after(clock, sender, 1.0, sender.send_text("wxid_a", "hello"))
    assert isinstance(cut, SendCut) and cut.outcome == "uncertain"
    assert clock.now() - START == pytest.approx(1.0 + CUT_SEND_WAIT_S)
    assert puppet.delivered == []


async def test_ids_of_sent_messages_go_to_the_echo_ledger_once_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("wechat_sdk.echoes.SENT_IDS_KEPT", 2)
    clock, puppet, sender, ledger = make()
    for text in ("one", "two", "three"):
        await drive(clock, sender.send_text("wxid_a", text))
    puppet.failures = [SendOutcomeUnknown("lost reply")]  # no id comes back from this one
    await drive(clock, sender.send_text("wxid_a", "four"))
    assert not ledger.take_sent("msg-text-1")  # the oldest forgotten
    assert ledger.take_sent("msg-text-3")
    assert not ledger.take_sent("msg-text-3")  # once
    assert ledger.take_sent("msg-text-2")


async def test_a_send_under_way_when_a_stop_begins_is_let_land_before_the_cut() -> None:
    # begun before the stop, the send is awaited in its own task; the stop waits for it
    clock, puppet, sender, _ = make()
    puppet.send_takes_s = 5.0
    task = asyncio.ensure_future(sender.send_text("wxid_a", "hello"))
    await clock.advance(2.0)
    sender.stop_began()
    landed = asyncio.ensure_future(sender.sends_landed())
    await clock.run_until_idle()
    assert landed.done() and task.done() and task.exception() is None
    assert clock.now() - START == pytest.approx(5.0)
    assert puppet.delivered == [("wxid_a", "text:hello")]
    assert sender.stats.sent == 1


async def test_a_send_under_way_that_never_lands_is_cut_as_uncertain(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, puppet, sender, _ = make()
    puppet.send_takes_s = CUT_SEND_WAIT_S * 10  # hung
    task = asyncio.ensure_future(sender.send_text("wxid_a", "hello"))
    await clock.advance(1.0)
    sender.stop_began()
    landed = asyncio.ensure_future(sender.sends_landed())
    await clock.advance(CUT_SEND_WAIT_S)
    assert landed.done()  # waited for a bounded time
    task.cancel()
    with pytest.raises(SendCut) as cut:
        await task
    assert cut.value.outcome == "uncertain"
    assert "may or may not have gone out" in caplog.text
    assert sender.stats.sent == 0


async def test_a_task_begun_while_the_sends_land_is_cut_with_the_rest() -> None:
    # a stop's end: the grace is over, the sends under way land (seconds, maybe), and a
    # turn that began meanwhile was left running, neither finished nor cut
    from wechat_sdk.clock import RealClock
    from wechat_sdk.outbound.delivery import finish_or_cut

    tasks: set[asyncio.Task[None]] = set()

    def begin() -> asyncio.Task[None]:
        task = asyncio.ensure_future(asyncio.sleep(3600))
        tasks.add(task)
        return task

    class Landing:
        later: asyncio.Task[None] | None = None

        async def sends_landed(self) -> None:
            self.later = begin()  # a message taken while the sends landed

    first, sender = begin(), Landing()
    await finish_or_cut(tasks, 0.0, RealClock(), [sender])  # type: ignore[list-item]
    assert first.cancelled()
    assert sender.later is not None and sender.later.cancelled()
