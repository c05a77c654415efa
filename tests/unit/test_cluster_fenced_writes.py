"""Every write of an account held by lease is fenced in Redis (a real redis-server): a
gateway whose lease another gateway took over writes nothing (its outbox, history,
dedupe marks, first login, iLink state and login, account status are refused with
lease_lost and Redis is left as it was), the current holder's writes go through, and a
store without a lease (one gateway) writes as before."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from wechat_sdk.agent import HistoryEntry
from wechat_sdk.clock import RealClock
from wechat_sdk.cluster.coordinator import ClusterCoordinator
from wechat_sdk.cluster.fence import FencedPuppet, LeaseGuard, LeaseLost, StatusWriter, held_store
from wechat_sdk.cluster.leases import Lease, LeaseKeys, Leases
from wechat_sdk.puppet import SendError
from wechat_sdk.stores.base import OutboxItem
from wechat_sdk.stores.redis.fencing import Fence
from wechat_sdk.stores.redis.store import RedisStore

T0 = 1_700_000_000.0


@pytest.fixture
def store(redis_url: str, redis_namespace: str) -> Iterator[RedisStore]:
    with RedisStore(redis_url, namespace=redis_namespace) as s:
        yield s


@pytest.fixture
def keys(store: RedisStore) -> LeaseKeys:
    return LeaseKeys(store.keys)


def snapshot(store: RedisStore) -> dict[str, Any]:
    """Every key of the test's namespace with its value (whatever its type)."""
    r = store.client
    out: dict[str, Any] = {}
    for key in sorted(r.scan_iter(f"{store.keys.prefix}*")):
        kind = r.type(key)
        if kind == "string":
            out[key] = r.get(key)
        elif kind == "hash":
            out[key] = r.hgetall(key)
        elif kind == "list":
            out[key] = r.lrange(key, 0, -1)
        elif kind == "zset":
            out[key] = r.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = kind
    return out


async def take_over(aclient: Any, keys: LeaseKeys, old: Lease) -> Lease:
    """The old holder paused past its lease (it expired); gateway B took the account."""
    await aclient.delete(keys.lease(old.account_id))
    new = await Leases(aclient, keys, "gw-b", ttl_s=30).acquire(old.account_id)
    assert new is not None and new.token > old.token
    return new


def fence_of(keys: LeaseKeys, lease: Lease, lost: list[str] | None = None) -> Fence:
    on_lost = None if lost is None else (lambda: lost.append(lease.account_id))
    return Fence(lease.account_id, keys.lease(lease.account_id), lease.value, on_lost=on_lost)


def item(text: str, account: str = "acc") -> OutboxItem:
    return OutboxItem(account, "alice", "text", T0, text=text, dm=True)


def entry(n: int) -> HistoryEntry:
    return HistoryEntry("user", "alice", "Alice", f"said {n}", T0 + n, f"m{n}")


# each kind of write a holder makes for its account, on its fenced view of the store
WRITES: dict[str, Callable[[Any], object]] = {
    "outbox add": lambda s: s.outbox.add([item("again")]),
    "outbox set_state": lambda s: s.outbox.set_state(s.outbox.items("acc")[0].id, "sending"),
    "outbox delete": lambda s: s.outbox.delete(s.outbox.items("acc")[0].id),
    "outbox replace": lambda s: s.outbox.replace(s.outbox.items("acc")[:1], [item("one")]),
    "history append": lambda s: s.history.append("acc", "alice", entry(9), 50),
    "history clear": lambda s: s.history.clear("acc", "alice"),
    "history remove": lambda s: s.history.remove("acc", "alice", [entry(1)]),
    "dedupe mark": lambda s: s.dedupe.check_and_add("acc", "m9", T0, 3600),
    "first login": lambda s: s.keep_serving_since("acc", T0),
}


@pytest.mark.parametrize("write", list(WRITES))
async def test_a_holder_whose_lease_was_taken_over_writes_nothing(
    write: str, store: RedisStore, aclient: Any, keys: LeaseKeys
) -> None:
    old = await Leases(aclient, keys, "gw-a", ttl_s=30).acquire("acc")
    assert old is not None
    lost: list[str] = []
    held = store.fenced(fence_of(keys, old, lost))
    held.outbox.add([item("one"), item("two")])  # while it held the account
    held.history.append("acc", "alice", entry(1), 50)
    await take_over(aclient, keys, old)
    before = snapshot(store)
    with pytest.raises(LeaseLost) as err:
        WRITES[write](held)
    assert err.value.reason == "lease_lost" and err.value.account_id == "acc"
    assert "no longer holds the account's lease" in str(err.value)
    assert snapshot(store) == before  # nothing half-written
    assert lost == ["acc"]  # told: the account stops here


@pytest.mark.parametrize("write", list(WRITES))
async def test_the_current_holder_and_a_store_without_lease_write(
    write: str, store: RedisStore, aclient: Any, keys: LeaseKeys
) -> None:
    old = await Leases(aclient, keys, "gw-a", ttl_s=30).acquire("acc")
    assert old is not None
    new = await take_over(aclient, keys, old)
    for view in (store.fenced(fence_of(keys, new)), store):  # holder B; one gateway
        view.outbox.add([item("one")])
        view.history.append("acc", "alice", entry(1), 50)
        before = snapshot(store)
        WRITES[write](view)
        assert snapshot(store) != before
        lease = {keys.lease("acc"), keys.fence("acc")}
        store.client.delete(*(k for k in snapshot(store) if k not in lease))


async def test_the_holders_writes_read_back(
    store: RedisStore, aclient: Any, keys: LeaseKeys
) -> None:
    lease = await Leases(aclient, keys, "gw-a", ttl_s=30).acquire("acc")
    assert lease is not None
    held = store.fenced(fence_of(keys, lease))
    (added,) = held.outbox.add([item("hi")])
    held.outbox.set_state(added.id, "sending")
    assert [(i.text, i.state) for i in store.outbox.items("acc")] == [("hi", "sending")]
    assert held.outbox.delete(added.id) and store.outbox.items("acc") == []
    held.history.append("acc", "alice", entry(1), 50)
    assert store.history.get("acc", "alice") == [entry(1)]
    held.history.clear("acc", "alice")
    assert store.history.get("acc", "alice") == []
    assert held.dedupe.check_and_add("acc", "m1", T0, 3600) is False
    assert store.dedupe.check_and_add("acc", "m1", T0 + 1, 3600) is True
    assert held.mark_position() == 1
    held.keep_serving_since("acc", T0)
    assert store.serving_since("acc") == T0


async def test_a_stale_holder_does_not_mark_a_message_seen(
    store: RedisStore, aclient: Any, keys: LeaseKeys
) -> None:
    """The old holder's dedupe check is refused, so the message is still new to the
    gateway that runs the account now: it is answered there, once."""
    old = await Leases(aclient, keys, "gw-a", ttl_s=30).acquire("acc")
    assert old is not None
    stale = store.fenced(fence_of(keys, old))
    new = await take_over(aclient, keys, old)
    with pytest.raises(LeaseLost):
        stale.dedupe.check_and_add("acc", "m1", T0, 3600)
    current = store.fenced(fence_of(keys, new))
    assert current.dedupe.check_and_add("acc", "m1", T0, 3600) is False  # new to it
    assert current.dedupe.check_and_add("acc", "m1", T0, 3600) is True


async def test_a_stale_holders_ilink_state_and_login_writes_are_refused(
    store: RedisStore, aclient: Any, keys: LeaseKeys, redis_url: str, redis_namespace: str
) -> None:
    from wechat_sdk.adapters.ilink.redis_state import RedisILinkState, RedisSessionFile
    from wechat_sdk.adapters.ilink.session import KeptLogin
    from wechat_sdk.adapters.ilink.state import Delivered, PeerWindow
    from wechat_sdk.puppets import SharedRedis

    def said(n: int, at: float) -> Delivered:
        return Delivered(f"m{n}", "alice", f'{{"n": {n}}}', f"text {n}", True, f"t{n}", at)

    old = await Leases(aclient, keys, "gw-a", ttl_s=30).acquire("acc")
    assert old is not None
    shared = SharedRedis(redis_url, redis_namespace)
    lease_key = keys.lease("acc")
    told: list[str] = []  # the account stops at once when a transport's write is refused
    stale = RedisILinkState(
        SharedRedis(
            redis_url,
            redis_namespace,
            lease_key=lease_key,
            lease_value=old.value,
            on_lost=lambda: told.append("lost"),
        ),
        "acc",
    )
    stale_login = RedisSessionFile(
        SharedRedis(redis_url, redis_namespace, lease_key=lease_key, lease_value=old.value),
        "acc",
    )
    try:
        assert (await stale.record([said(1, T0)], "c1")).added == ["m1"]  # while it held it
        stale_login.keep(KeptLogin("bot", "secret-1"))
        new = await take_over(aclient, keys, old)
        before = snapshot(store)
        refused: list[Any] = [
            stale.record([said(2, T0 + 5)], "c2"),  # the cursor, a token, a window
            stale.sent("alice", "b1", "answer", T0 + 6),  # a window's count
            stale.prune(T0 + 100),
            stale.forget_all(),  # (a server change seen by a gateway that lost the lease)
        ]
        for write in refused:
            with pytest.raises(LeaseLost) as err:
                await write
            assert err.value.reason == "lease_lost"
        assert told == ["lost"] * len(refused)
        for login_write in (
            stale_login.expire,
            lambda: stale_login.keep(KeptLogin("b", "x")),
            lambda: stale_login.moved("https://elsewhere.example"),
        ):
            with pytest.raises(LeaseLost):
                login_write()
        assert snapshot(store) == before
        assert await stale.cursor() == "c1"  # (reads need no lease)

        current = RedisILinkState(
            SharedRedis(redis_url, redis_namespace, lease_key=lease_key, lease_value=new.value),
            "acc",
        )
        try:
            assert (await current.record([said(2, T0 + 5)], "c2")).added == ["m2"]
            await current.sent("alice", "b1", "answer", T0 + 6)
            assert await current.window("alice") == PeerWindow(T0 + 5, 1)
            assert await current.context_token("alice") == "t2"
            assert await current.cursor() == "c2"
        finally:
            await current.close()
        alone = RedisSessionFile(shared, "acc")  # one gateway, no lease: as before
        try:
            alone.keep(KeptLogin("bot", "secret-2"))
            login, _ = alone.load()
            assert login is not None and login.token == "secret-2"
        finally:
            alone.close()
    finally:
        await stale.close()
        stale_login.close()


async def test_only_the_holder_writes_an_accounts_status(
    store: RedisStore, aclient: Any, keys: LeaseKeys
) -> None:
    leases = Leases(aclient, keys, "gw-a", ttl_s=30)
    kept, moved = await leases.acquire("a1"), await leases.acquire("a2")
    assert kept is not None and moved is not None
    await take_over(aclient, keys, moved)
    await StatusWriter(aclient, keys).write({kept: '{"s": 1}', moved: '{"s": 2}'}, 30)
    assert await aclient.get(keys.status("a1")) == '{"s": 1}'
    assert await aclient.get(keys.status("a2")) is None  # gw-b's to write


async def test_a_refused_write_stops_the_account_here_at_once(
    store: RedisStore, aclient: Any, keys: LeaseKeys, caplog: pytest.LogCaptureFixture
) -> None:
    """Long before the next renewal would find the lease gone: the account stops, and
    its sends are refused meanwhile."""
    from redis.asyncio import Redis

    running: set[str] = set()
    guards: dict[str, LeaseGuard] = {}

    async def start(account_id: str, guard: LeaseGuard) -> Any:
        running.add(account_id)
        guards[account_id] = guard
        return lambda: {}

    async def stop(account_id: str, grace_s: float) -> None:
        running.discard(account_id)

    cluster = ClusterCoordinator(
        Redis(connection_pool=aclient.connection_pool),
        keys,
        ["acc"],
        start_account=start,
        stop_account=stop,
        clock=RealClock(),
        gateway_id="gw-a",
        ttl_s=60,  # renewals every 15 s: far away
        tick_s=30,
    )
    await cluster.start()
    try:
        assert running == {"acc"}
        guard = guards["acc"]
        held = held_store(store, guard)
        held.history.append("acc", "alice", entry(1), 50)
        await take_over(aclient, keys, guard.lease)
        with pytest.raises(LeaseLost):
            held.history.append("acc", "alice", entry(2), 50)
        assert guard.lost

        class Recording:
            def __init__(self) -> None:
                self.sent: list[str] = []

            async def send_text(self, conversation_id: str, text: str) -> None:
                self.sent.append(text)

        puppet = Recording()
        with pytest.raises(SendError) as err:
            await FencedPuppet(puppet, guard).send_text("alice", "late")  # type: ignore[arg-type]
        assert err.value.code == "lease_lost" and puppet.sent == []
        for _ in range(100):
            if not running:
                break
            await asyncio.sleep(0.02)
        assert running == set() and "acc" not in cluster.held
        assert "reason=lease_lost" in caplog.text
        assert store.history.get("acc", "alice") == [entry(1)]
    finally:
        await cluster.stop()


async def test_a_stop_right_after_a_refused_write_ends_and_stops_every_account(
    store: RedisStore, aclient: Any, keys: LeaseKeys
) -> None:
    """The account a refused write is stopping, and a stop of the gateway at that moment:
    the stop waits for that account's stop, then hands the others over (it used to fail
    on the account gone meanwhile, before releasing the others' leases)."""
    from redis.asyncio import Redis

    running: set[str] = set()
    guards: dict[str, LeaseGuard] = {}
    stopping = asyncio.Event()

    async def start(account_id: str, guard: LeaseGuard) -> Any:
        running.add(account_id)
        guards[account_id] = guard
        return lambda: {}

    async def stop(account_id: str, grace_s: float) -> None:
        if account_id == "acc":  # the lost account's stop takes a moment
            stopping.set()
            await asyncio.sleep(0.2)
        running.discard(account_id)

    cluster = ClusterCoordinator(
        Redis(connection_pool=aclient.connection_pool),
        keys,
        ["acc", "other"],
        start_account=start,
        stop_account=stop,
        clock=RealClock(),
        gateway_id="gw-a",
        ttl_s=60,
        tick_s=30,
    )
    await cluster.start()
    assert running == {"acc", "other"}
    held = held_store(store, guards["acc"])
    await take_over(aclient, keys, guards["acc"].lease)
    with pytest.raises(LeaseLost):
        held.history.append("acc", "alice", entry(1), 50)
    await asyncio.wait_for(stopping.wait(), 5)
    await asyncio.wait_for(cluster.stop(), 10)
    assert running == set()
    holders = await Leases(aclient, keys, "gw-b", ttl_s=30).holders(["acc", "other"])
    assert holders == {"acc": "gw-b", "other": None}  # "other" released at the stop


async def test_a_store_not_on_redis_under_a_lease_fences_its_outbox_by_the_lease_here(
    aclient: Any, keys: LeaseKeys
) -> None:
    """(A test's setup: leases are kept only with a Redis store.) Its outbox refuses
    writes once the lease is lost here; the rest of the store is its own."""
    from wechat_sdk.stores import MemoryStore

    lease = await Leases(aclient, keys, "gw-a", ttl_s=30).acquire("acc")
    assert lease is not None
    guard = LeaseGuard(lease, Leases(aclient, keys, "gw-a", ttl_s=30), RealClock(), 30)
    memory = MemoryStore()
    held = held_store(memory, guard)
    held.outbox.add([item("one")])
    guard.lose()
    with pytest.raises(LeaseLost):
        held.outbox.add([item("two")])
    with pytest.raises(LeaseLost):
        held.outbox.replace(memory.outbox.items("acc"), [item("two")])
    assert [i.text for i in memory.outbox.items("acc")] == ["one"]
    held.history.append("acc", "alice", entry(1), 50)
    assert memory.history.get("acc", "alice") == [entry(1)]
