"""The virtual clock settles exactly: it moves on only when nothing else can run.

Between two virtual wake-ups every piece of work that is ready must run, however long its
chain of hand-offs (callbacks, locks, queues, local I/O), and ``run_until_idle`` must not
return while some of it is still going. These tests run on the loop the simulator's pytest
plugin gives (``wechat_sdk.idle_loop``); a settle that yielded a fixed number of times would
leave the long chains below unfinished.
"""

from __future__ import annotations

import asyncio
import socket

from wechat_sdk.clock import SETTLE_YIELDS, VirtualClock
from wechat_sdk.idle_loop import IdleAwareEventLoop, new_event_loop

HOPS = 20 * SETTLE_YIELDS


def callback_chain(hops: int, done: list[str]) -> None:
    """``hops`` callbacks, each scheduling the next with call_soon."""
    loop = asyncio.get_running_loop()

    def step(left: int) -> None:
        if left == 0:
            done.append("callbacks")
        else:
            loop.call_soon(step, left - 1)

    loop.call_soon(step, hops)


async def lock_handoffs(hops: int, done: list[str]) -> None:
    """Two tasks passing a lock back and forth ``hops`` times."""
    lock = asyncio.Lock()
    turns: list[int] = []

    async def player(name: int) -> None:
        while len(turns) < hops:
            async with lock:
                turns.append(name)
            await asyncio.sleep(0)

    await asyncio.gather(player(0), player(1))
    done.append("locks")


def test_asyncio_runner_runs_on_the_idle_aware_loop_with_its_factory() -> None:
    async def loop_type() -> type:
        return type(asyncio.get_running_loop())

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        assert runner.run(loop_type()) is IdleAwareEventLoop


async def test_the_pytest_plugin_gives_async_tests_the_idle_aware_loop() -> None:
    assert type(asyncio.get_running_loop()) is IdleAwareEventLoop


async def test_run_until_idle_returns_only_after_every_ready_chain_ran() -> None:
    clock = VirtualClock()
    done: list[str] = []
    callback_chain(HOPS, done)
    handoffs = asyncio.ensure_future(lock_handoffs(HOPS, done))
    await clock.run_until_idle()
    assert sorted(done) == ["callbacks", "locks"]
    assert handoffs.done()


async def test_a_sleeper_wakes_only_after_the_work_ready_before_it() -> None:
    clock = VirtualClock()
    order: list[str] = []

    async def busy() -> None:
        for _ in range(HOPS):
            await asyncio.sleep(0)  # ready all along: no virtual time passes
        order.append("busy work finished")
        await clock.sleep(2)
        order.append("busy slept 2 s")

    async def sleeper() -> None:
        await clock.sleep(1)
        order.append("sleeper woke at 1 s")
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(HOPS):  # a chain through a queue, started by the wake-up
            queue.put_nowait(i)
            await queue.get()
        order.append("sleeper's chain finished")

    start = clock.now()
    tasks = [asyncio.ensure_future(busy()), asyncio.ensure_future(sleeper())]
    await clock.run_until_idle()
    assert order == [
        "busy work finished",
        "sleeper woke at 1 s",
        "sleeper's chain finished",
        "busy slept 2 s",
    ]
    assert clock.now() == start + 2
    assert all(t.done() for t in tasks)


async def test_settle_waits_for_local_io_already_on_its_way() -> None:
    clock = VirtualClock()
    left, right = socket.socketpair()
    reader_l, writer_l = await asyncio.open_unix_connection(sock=left)
    reader_r, writer_r = await asyncio.open_unix_connection(sock=right)
    rounds = 200

    async def ping() -> int:
        for i in range(rounds):
            writer_l.write(b"%d\n" % i)
            assert int(await reader_l.readline()) == i
        return rounds

    async def pong() -> None:
        while line := await reader_r.readline():
            writer_r.write(line)

    pinging, ponging = asyncio.ensure_future(ping()), asyncio.ensure_future(pong())
    await clock.run_until_idle()
    try:
        assert pinging.done() and pinging.result() == rounds
    finally:
        ponging.cancel()
        for writer in (writer_l, writer_r):
            writer.close()


async def test_a_real_timer_far_off_does_not_hold_settle_up() -> None:
    clock = VirtualClock()
    later = asyncio.get_running_loop().call_later(3600, lambda: None)
    done: list[str] = []
    callback_chain(10, done)
    try:
        await clock.run_until_idle()  # returns: the timer is not work that is ready now
    finally:
        later.cancel()
    assert done == ["callbacks"]


def test_on_another_loop_settle_yields_a_bounded_number_of_times() -> None:
    async def chains() -> tuple[list[str], list[str]]:
        clock = VirtualClock()
        short: list[str] = []
        long: list[str] = []
        callback_chain(SETTLE_YIELDS // 2, short)
        callback_chain(HOPS, long)
        await clock.settle()
        return short, long

    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        short, long = runner.run(chains())
    assert short == ["callbacks"]  # a chain shorter than the fallback's yields has run
    assert long == []  # (the documented limit of the fallback)
