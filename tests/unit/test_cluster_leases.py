"""Account leases on a real redis-server: one holder at a time, a new fencing token per
holder, a released lease taken at once, an expired one taken by another gateway, and a
paused old holder that wakes up refused before it sends."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from wechat_sdk.clock import RealClock
from wechat_sdk.cluster.coordinator import ClusterCoordinator
from wechat_sdk.cluster.fence import FencedPuppet, LeaseGuard
from wechat_sdk.cluster.leases import LeaseKeys, Leases
from wechat_sdk.puppet import SendError
from wechat_sdk.stores.redis.keys import Keys


@pytest.fixture
def keys(redis_namespace: str) -> LeaseKeys:
    return LeaseKeys(Keys("wechat", redis_namespace))


async def test_one_holder_at_a_time_and_a_new_token_for_each(aclient: Any, keys: LeaseKeys) -> None:
    a = Leases(aclient, keys, "gw-a", ttl_s=10)
    b = Leases(aclient, keys, "gw-b", ttl_s=10)
    first = await a.acquire("acc")
    assert first is not None
    assert await b.acquire("acc") is None
    assert await a.renew(first) and await a.holds(first)
    await b.release(first.__class__("acc", "gw-b", first.token))  # not b's: nothing happens
    assert await a.holds(first)
    await a.release(first)  # a clean stop: free at once
    second = await b.acquire("acc")
    assert second is not None and second.token > first.token
    assert not await a.holds(first) and not await a.renew(first)
    assert await b.holders(["acc", "other"]) == {"acc": "gw-b", "other": None}


async def test_an_expired_lease_is_taken_by_another_gateway(aclient: Any, keys: LeaseKeys) -> None:
    a = Leases(aclient, keys, "gw-a", ttl_s=0.2)
    b = Leases(aclient, keys, "gw-b", ttl_s=10)
    first = await a.acquire("acc")
    assert first is not None
    await asyncio.sleep(0.3)  # gw-a died: no renewal
    assert await b.acquire("acc") is not None
    assert not await a.renew(first)


class Recording:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_text(self, conversation_id: str, text: str, *args: Any) -> None:
        self.sent.append(text)


async def test_a_paused_old_holder_that_wakes_up_sends_nothing(
    aclient: Any, keys: LeaseKeys
) -> None:
    clock = RealClock()
    a = Leases(aclient, keys, "gw-a", ttl_s=0.3)
    lease = await a.acquire("acc")
    assert lease is not None
    guard = LeaseGuard(lease, a, clock, 0.3)
    puppet = Recording()
    fenced: Any = FencedPuppet(puppet, guard)
    await fenced.send_text("alice", "while held")
    await asyncio.sleep(0.4)  # paused past its lease; another gateway takes the account
    assert await Leases(aclient, keys, "gw-b", ttl_s=10).acquire("acc") is not None
    guard.confirmed(clock.now())  # (even believing it renewed, the token check refuses)
    with pytest.raises(SendError) as err:
        await fenced.send_text("alice", "after the pause")
    assert err.value.code == "lease_lost"
    assert puppet.sent == ["while held"]


async def test_the_last_check_before_a_request_goes_by_the_local_clock(
    aclient: Any, keys: LeaseKeys
) -> None:
    from wechat_sdk.clock import VirtualClock

    clock = VirtualClock(1000.0)
    a = Leases(aclient, keys, "gw-a", ttl_s=10)
    lease = await a.acquire("acc")
    assert lease is not None
    guard = LeaseGuard(lease, a, clock, 10)
    guard.check_here()  # just confirmed: the request may leave
    await clock.advance(30)  # paused past the lease (another gateway may run it now)
    with pytest.raises(SendError) as unconfirmed:
        guard.check_here()
    assert unconfirmed.value.code == "lease_unconfirmed" and unconfirmed.value.transient
    guard.confirmed(clock.now())
    guard.check_here()
    guard.lose()
    with pytest.raises(SendError) as lost:
        guard.check_here()
    assert lost.value.code == "lease_lost" and not lost.value.transient


async def test_a_send_waits_while_the_lease_is_unconfirmed(aclient: Any, keys: LeaseKeys) -> None:
    clock = RealClock()
    a = Leases(aclient, keys, "gw-a", ttl_s=10)
    lease = await a.acquire("acc")
    assert lease is not None
    guard = LeaseGuard(lease, a, clock, 10)
    guard.valid_until = clock.now()  # Redis has not confirmed it for a while
    puppet = Recording()
    sending = asyncio.ensure_future(FencedPuppet(puppet, guard).send_text("alice", "hi"))
    await asyncio.sleep(0.05)
    assert not sending.done() and puppet.sent == []
    guard.confirmed(clock.now())  # Redis answers again
    await asyncio.wait_for(sending, 5)
    assert puppet.sent == ["hi"]


async def test_a_proactive_send_waits_for_the_lease_at_most_its_ttl(
    aclient: Any, keys: LeaseKeys
) -> None:
    """A send whose caller waits for its answer (Gateway.send, the HTTP API) waits for the
    lease only as long as the TTL: confirmed meanwhile, it goes out; not by then, it is
    refused for good (store_unavailable), saying why, and nothing goes out."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from wechat_sdk.outbound.delivery import proactive

    clock = RealClock()
    a = Leases(aclient, keys, "gw-a", ttl_s=10)  # (in Redis all along: the renewals are ours)
    lease = await a.acquire("acc")
    assert lease is not None
    guard = LeaseGuard(lease, a, clock, 0.5)
    puppet = Recording()
    fenced: Any = FencedPuppet(puppet, guard)
    guard.valid_until = clock.now()  # Redis has not confirmed it for a while
    with proactive():
        sending = asyncio.ensure_future(fenced.send_text("alice", "in time"))
    await asyncio.sleep(0.1)
    assert not sending.done()
    guard.confirmed(clock.now())  # a renewal within the TTL: it goes
    await asyncio.wait_for(sending, 5)
    assert puppet.sent == ["in time"]

    guard.valid_until = clock.now()
    guard.failure = RedisConnectionError("Error 111 connecting to redis:6379. Connection refused.")
    began = clock.now()
    with proactive(), pytest.raises(SendError) as refused:
        await asyncio.wait_for(fenced.send_text("alice", "too late"), 5)
    assert clock.now() - began >= 0.5  # (it waited the lease's TTL first)
    assert refused.value.code == "store_unavailable" and not refused.value.transient
    assert str(refused.value) == (
        "the account's lease could not be confirmed in Redis within 0.5 s (Error 111 "
        "connecting to redis:6379. Connection refused.): not sent"
    )
    assert refused.value.__cause__ is guard.failure
    assert puppet.sent == ["in time"]
    # a reply (nobody waits for its answer but the user) still waits for the lease
    replying = asyncio.ensure_future(fenced.send_text("alice", "the reply"))
    await asyncio.sleep(0.7)
    assert not replying.done()
    guard.confirmed(clock.now())
    await asyncio.wait_for(replying, 5)
    assert puppet.sent == ["in time", "the reply"]


async def test_gateways_share_the_accounts_and_a_clean_stop_hands_over_at_once(
    aclient: Any, keys: LeaseKeys
) -> None:
    running: dict[str, set[str]] = {}

    def coordinator(name: str) -> ClusterCoordinator:
        from redis.asyncio import Redis

        running[name] = set()

        async def start(account_id: str, guard: LeaseGuard) -> Any:
            running[name].add(account_id)
            return lambda: {"state": "ready"}

        async def stop(account_id: str, grace_s: float) -> None:
            running[name].discard(account_id)

        own = Redis(connection_pool=aclient.connection_pool)
        return ClusterCoordinator(
            own,
            keys,
            [f"a{i}" for i in range(6)],
            start_account=start,
            stop_account=stop,
            clock=RealClock(),
            gateway_id=name,
            ttl_s=3,
            tick_s=0.05,
        )

    one, two = coordinator("one"), coordinator("two")
    await one.start()
    assert len(running["one"]) == 6  # alone: every account
    await two.start()
    for _ in range(100):
        if len(running["one"]) == len(running["two"]) == 3:
            break
        await asyncio.sleep(0.05)
    assert len(running["one"]) == len(running["two"]) == 3  # spread evenly
    assert not running["one"] & running["two"]  # never one account in two places
    await one.stop()
    for _ in range(100):
        if len(running["two"]) == 6:
            break
        await asyncio.sleep(0.05)
    assert len(running["two"]) == 6
    await two.stop()


async def test_redis_lost_then_back_empty_stops_sends_and_is_said(
    own_redis: Any, redis_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis gone while running: the accounts keep running but send nothing; back without
    its data (restarted without persistence): said at error level, the accounts taken
    again under new leases, and a send held meanwhile refused (the old lease is gone)."""
    from redis.asyncio import Redis

    client = Redis.from_url(own_redis.url, decode_responses=True, socket_timeout=1)
    keys = LeaseKeys(Keys("wechat", redis_namespace))
    running: set[str] = set()
    guards: dict[str, LeaseGuard] = {}

    async def start(account_id: str, guard: LeaseGuard) -> Any:
        running.add(account_id)
        guards[account_id] = guard
        return lambda: {"state": "ready"}

    async def stop(account_id: str, grace_s: float) -> None:
        running.discard(account_id)

    cluster = ClusterCoordinator(
        client,
        keys,
        ["a0"],
        start_account=start,
        stop_account=stop,
        clock=RealClock(),
        gateway_id="gw",
        ttl_s=1.2,
        tick_s=0.1,
    )
    await cluster.start()
    try:
        assert running == {"a0"}
        first = guards["a0"]
        puppet = Recording()
        own_redis.kill()
        await asyncio.sleep(1.5)  # past the lease: unconfirmed
        sending = asyncio.ensure_future(FencedPuppet(puppet, first).send_text("alice", "hi"))
        await asyncio.sleep(0.2)
        assert not sending.done() and puppet.sent == []  # held, not sent
        assert running == {"a0"}  # still running: it keeps what it holds
        own_redis.restart()
        for _ in range(100):
            if guards["a0"] is not first:
                break
            await asyncio.sleep(0.05)
        assert guards["a0"] is not first and running == {"a0"}  # taken again
        with pytest.raises(SendError):
            await asyncio.wait_for(sending, 5)
        assert puppet.sent == []
        assert "reason=redis_unreachable" in caplog.text
        assert "reason=redis_data_lost" in caplog.text
    finally:
        await cluster.stop()


async def test_a_released_account_is_taken_without_waiting_for_the_next_round(
    aclient: Any, keys: LeaseKeys
) -> None:
    """A clean stop publishes each release: the other gateway takes the account at once,
    though its own next round is half a minute away."""
    from redis.asyncio import Redis

    running: dict[str, set[str]] = {"one": set(), "two": set()}

    def coordinator(name: str, tick_s: float) -> ClusterCoordinator:
        async def start(account_id: str, guard: LeaseGuard) -> Any:
            running[name].add(account_id)
            return lambda: {}

        async def stop(account_id: str, grace_s: float) -> None:
            running[name].discard(account_id)

        return ClusterCoordinator(
            Redis(connection_pool=aclient.connection_pool),
            keys,
            ["a0", "a1"],
            start_account=start,
            stop_account=stop,
            clock=RealClock(),
            gateway_id=name,
            ttl_s=30,
            tick_s=tick_s,
        )

    one, two = coordinator("one", 0.05), coordinator("two", 30)
    await one.start()
    await two.start()
    try:
        for _ in range(100):  # one hands its extra account over; two is woken for it
            if len(running["two"]) == 1:
                break
            await asyncio.sleep(0.05)
        assert len(running["one"]) == len(running["two"]) == 1
        await one.stop()
        for _ in range(100):
            if len(running["two"]) == 2:
                break
            await asyncio.sleep(0.05)
        assert running["two"] == {"a0", "a1"}
    finally:
        await two.stop()


async def test_a_stop_ends_even_when_something_under_the_loop_swallowed_its_cancellation(
    aclient: Any, keys: LeaseKeys
) -> None:
    """Seen after a burst: a stop waited forever on the cluster loop, cancelled while a
    library under it turned the cancellation into a normal return. The loop now ends at
    its next turn, and the stop cancels again until it does."""
    starting = asyncio.Event()
    release = asyncio.Event()
    running: set[str] = set()

    async def start(account_id: str, guard: LeaseGuard) -> Any:
        if account_id == "a1":  # the second account starts while the stop comes
            starting.set()
            with contextlib.suppress(asyncio.CancelledError):  # as a careless library does
                await release.wait()
        running.add(account_id)
        return lambda: {"state": "ready"}

    async def stop(account_id: str, grace_s: float) -> None:
        running.discard(account_id)

    cluster = ClusterCoordinator(
        aclient,
        keys,
        ["a0"],
        start_account=start,
        stop_account=stop,
        clock=RealClock(),
        gateway_id="gw",
        ttl_s=10,
        tick_s=0.05,
    )
    await cluster.start()
    cluster.accounts.append("a1")  # taken up by the loop's next round
    await asyncio.wait_for(starting.wait(), 5)
    stopping = asyncio.ensure_future(cluster.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)
    assert stopping in done, "the stop never ended"
    assert running == set()  # every account stopped, the one whose start was cut too
    assert await Leases(aclient, keys, "other", ttl_s=10).holders(["a0", "a1"]) == {
        "a0": None,
        "a1": None,
    }


async def test_a_redis_stall_in_the_check_before_a_send_waits_and_sends_once(
    aclient: Any, keys: LeaseKeys
) -> None:
    """Redis stalls in the check before a send, then again right after the renewal that
    confirmed the lease: the send waits for the next confirmation and goes out once
    (before, the second stall escaped the sender as a redis TimeoutError)."""
    from redis.exceptions import TimeoutError as RedisTimeoutError

    class Stalling(Leases):
        stalls = 2

        async def holds(self, lease: Any) -> bool:
            if self.stalls:
                self.stalls -= 1
                raise RedisTimeoutError("Timeout reading from socket")
            return await super().holds(lease)

    clock = RealClock()
    leases = Stalling(aclient, keys, "gw-a", ttl_s=10)
    lease = await leases.acquire("acc")
    assert lease is not None
    guard = LeaseGuard(lease, leases, clock, 10)
    puppet = Recording()
    sending = asyncio.ensure_future(FencedPuppet(puppet, guard).send_text("alice", "the reply"))
    for _ in range(100):  # the renewals, as the coordinator makes them
        if sending.done():
            break
        await asyncio.sleep(0.05)
        guard.confirmed(clock.now())
    await asyncio.wait_for(sending, 5)
    assert puppet.sent == ["the reply"]
    assert leases.stalls == 0


async def test_a_fault_in_a_renewal_is_logged_and_the_next_renewal_keeps_the_lease(
    aclient: Any, keys: LeaseKeys, caplog: pytest.LogCaptureFixture
) -> None:
    stopped: list[str] = []

    async def start(account_id: str, guard: LeaseGuard) -> Any:
        return lambda: {"state": "ready"}

    async def stop(account_id: str, grace_s: float) -> None:
        stopped.append(account_id)

    cluster = ClusterCoordinator(
        aclient,
        keys,
        ["a0"],
        start_account=start,
        stop_account=stop,
        clock=RealClock(),
        gateway_id="gw",
        ttl_s=1.2,
        tick_s=0.1,
    )
    real = cluster._renew
    faults = [ValueError("a bug of ours")]

    async def renew() -> None:
        if faults:
            raise faults.pop()
        await real()

    cluster._renew = renew  # type: ignore[method-assign]
    await cluster.start()
    try:
        await asyncio.sleep(2.0)  # past the lease's TTL: only later renewals kept it
        assert not faults and stopped == []
        assert "a0" in cluster.held
        assert "reason=renew_failed" in caplog.text and "a bug of ours" in caplog.text
    finally:
        await cluster.stop()
