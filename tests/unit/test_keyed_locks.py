"""Per-conversation locks: one turn at a time per key, and no lock kept once unused."""

from __future__ import annotations

import asyncio

from wechat_sdk.keyed_locks import KeyedLocks


async def hold(locks: KeyedLocks, key: str, log: list[str], name: str) -> None:
    async with locks.hold(key):
        log.append(f"{name} in")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        log.append(f"{name} out")


async def test_one_holder_per_key_and_other_keys_do_not_wait() -> None:
    locks = KeyedLocks()
    log: list[str] = []
    await asyncio.gather(
        hold(locks, "a", log, "a1"), hold(locks, "a", log, "a2"), hold(locks, "b", log, "b1")
    )
    assert log.index("a1 out") < log.index("a2 in")  # same key: one after the other
    assert log.index("b1 in") < log.index("a1 out")  # another key: at the same time
    assert len(locks) == 0  # nothing kept once every holder is done


async def test_a_lock_stays_while_someone_waits_and_is_dropped_after_a_cancel() -> None:
    locks = KeyedLocks()
    release = asyncio.Event()

    async def first() -> None:
        async with locks.hold("a"):
            await release.wait()

    holder = asyncio.ensure_future(first())
    await asyncio.sleep(0)
    waiter = asyncio.ensure_future(hold(locks, "a", [], "w"))
    await asyncio.sleep(0)
    assert len(locks) == 1
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert len(locks) == 1  # still held by the first
    release.set()
    await holder
    assert len(locks) == 0
    # a later user gets a fresh lock that works
    log: list[str] = []
    await hold(locks, "a", log, "x")
    assert log == ["x in", "x out"] and len(locks) == 0
