"""The Pacer: a token bucket on a virtual clock, shared round-robin by conversations."""

from __future__ import annotations

import asyncio
import random

import pytest

from wechat_sdk.clock import VirtualClock
from wechat_sdk.outbound.pacing import Pacer


def _record(
    pacer: Pacer, clock: VirtualClock, log: list[tuple[str, float]], conversation: str
) -> asyncio.Task[None]:
    async def one() -> None:
        await pacer.turn(conversation)
        log.append((conversation, clock.now() - START))

    return asyncio.get_running_loop().create_task(one())


START = 1_700_000_000.0


async def test_burst_goes_at_once_then_one_per_second() -> None:
    clock = VirtualClock(START)
    pacer = Pacer(clock, per_second=1.0, burst=3)
    log: list[tuple[str, float]] = []
    tasks = [_record(pacer, clock, log, "c") for _ in range(6)]
    await clock.run_until_idle()
    await asyncio.gather(*tasks)
    times = [t for _, t in log]
    assert times[:3] == [0.0, 0.0, 0.0]
    assert times[3:] == pytest.approx([1.0, 2.0, 3.0], abs=0.01)
    assert pacer.granted == 6
    assert pacer.queue_depth == 0


async def test_bucket_refills_after_a_quiet_period_up_to_burst() -> None:
    clock = VirtualClock(START)
    pacer = Pacer(clock, per_second=2.0, burst=2)
    for _ in range(2):
        await pacer.turn("c")  # the burst: no waiting
    await clock.advance(60)  # a long pause saves up at most `burst` tokens
    log: list[tuple[str, float]] = []
    tasks = [_record(pacer, clock, log, "c") for _ in range(4)]
    await clock.run_until_idle()
    await asyncio.gather(*tasks)
    assert [t for _, t in log] == pytest.approx([60.0, 60.0, 60.5, 61.0], abs=0.01)


async def test_window_bound_holds_with_jitter() -> None:
    clock = VirtualClock(START)
    pacer = Pacer(clock, per_second=1.0, burst=5, jitter_s=0.3, rng=random.Random(7))
    log: list[tuple[str, float]] = []
    tasks = [_record(pacer, clock, log, f"c{i % 4}") for i in range(40)]
    await clock.run_until_idle()
    await asyncio.gather(*tasks)
    times = sorted(t for _, t in log)
    for i, start in enumerate(times):
        for w in (0.0, 0.5, 1.0, 3.0, 10.0):
            in_window = sum(1 for t in times[i:] if t <= start + w + 1e-9)
            assert in_window <= 5 + 1.0 * w + 1e-6


async def test_no_rate_means_no_waiting() -> None:
    clock = VirtualClock(START)
    pacer = Pacer(clock, per_second=None, burst=1)
    for _ in range(100):
        await pacer.turn("c")
    assert clock.now() == START
    assert clock.pending == 0
    assert pacer.granted == 100


async def test_round_robin_between_waiting_conversations() -> None:
    clock = VirtualClock(START)
    pacer = Pacer(clock, per_second=1.0, burst=1)
    await pacer.turn("warmup")  # empty the bucket so every turn below waits
    log: list[tuple[str, float]] = []
    tasks = [_record(pacer, clock, log, "group") for _ in range(5)]
    await clock.settle()
    tasks.append(_record(pacer, clock, log, "dm"))  # arrives after the group queued up
    await clock.run_until_idle()
    await asyncio.gather(*tasks)
    order = [c for c, _ in log]
    # the DM waits for at most one group turn, not for the whole group queue
    assert order.index("dm") <= 1
    assert order.count("group") == 5


async def test_cancelled_waiter_gives_its_place_up() -> None:
    clock = VirtualClock(START)
    pacer = Pacer(clock, per_second=1.0, burst=1)
    await pacer.turn("warmup")
    log: list[tuple[str, float]] = []
    doomed = _record(pacer, clock, log, "a")
    later = _record(pacer, clock, log, "b")
    await clock.settle()
    assert pacer.queue_depth == 2
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert pacer.queue_depth == 1
    await clock.run_until_idle()
    await later
    assert [c for c, _ in log] == ["b"]
    assert log[0][1] == pytest.approx(1.0, abs=0.01)


async def test_a_turn_granted_to_a_cancelled_waiter_is_handed_back() -> None:
    clock = VirtualClock(START)
    pacer = Pacer(clock, per_second=1.0, burst=1)

    async def wait_then_give_up() -> None:
        await pacer.turn("a")

    task = asyncio.get_running_loop().create_task(wait_then_give_up())
    await asyncio.sleep(0)  # the task is waiting, the dispatcher grants it at once
    await asyncio.sleep(0)
    task.cancel()  # cancelled after the grant, before it could use it
    with pytest.raises(asyncio.CancelledError):
        await task
    await pacer.turn("b")  # the token came back: no wait
    assert clock.now() == START


async def test_cancelling_every_waiter_stops_the_dispatcher_cleanly() -> None:
    clock = VirtualClock(START)
    pacer = Pacer(clock, per_second=1.0, burst=1, jitter_s=0.5, rng=random.Random(1))
    await _drive(clock, pacer.turn("warmup"))  # jitter sleeps on the virtual clock
    log: list[tuple[str, float]] = []
    tasks = [_record(pacer, clock, log, f"c{i}") for i in range(3)]
    await clock.settle()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await clock.run_until_idle()
    assert log == []
    assert pacer.queue_depth == 0
    # and it still works afterwards
    await asyncio.wait_for(_drive(clock, pacer.turn("again")), timeout=5)


async def _drive(clock: VirtualClock, coro: object) -> None:
    task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
    while not task.done():
        await clock.run_until_idle()
        await asyncio.sleep(0)
    await task


def test_per_second_must_be_positive() -> None:
    with pytest.raises(ValueError, match="per_second"):
        Pacer(VirtualClock(START), per_second=0)


async def test_a_huge_rate_is_as_good_as_no_limit_and_breaks_nothing() -> None:
    # (pacing.perSecond has no upper bound, by design: docs/replies.md; the largest finite
    # float overflows the refill to infinity, which the bucket caps at burst)
    clock = VirtualClock(START)
    pacer = Pacer(clock, per_second=1e308, burst=1)
    await clock.advance(5)
    log: list[tuple[str, float]] = []
    tasks = [_record(pacer, clock, log, f"c{i % 3}") for i in range(100)]
    await clock.run_until_idle()
    await asyncio.gather(*tasks)
    assert pacer.granted == 100
    assert max(t for _, t in log) < 5.2  # a millisecond's wait at most between two
