"""Gateways sharing accounts on a real redis-server, beyond the basics of
test_cluster_leases.py: a gateway limited to some accounts (``--accounts``) leaves none
unrun, a start that fails gives its account back, a clean stop keeps its leases through
the grace and hands each account over as soon as it is released, and a full Redis
(maxmemory) is said as such, not as an unreachable one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from wechat_sdk.clock import RealClock
from wechat_sdk.cluster.coordinator import ClusterCoordinator
from wechat_sdk.cluster.fence import FencedPuppet, LeaseGuard
from wechat_sdk.cluster.leases import LeaseKeys, Leases
from wechat_sdk.stores.redis.keys import Keys


@pytest.fixture
def keys(redis_namespace: str) -> LeaseKeys:
    return LeaseKeys(Keys("wechat", redis_namespace))


class Gateways:
    """Coordinators on one Redis, recording which accounts each runs."""

    def __init__(self, client: Any, keys: LeaseKeys) -> None:
        self.client = client
        self.keys = keys
        self.running: dict[str, set[str]] = {}
        self.taken: list[tuple[str, str]] = []
        self.made: list[ClusterCoordinator] = []

    def gateway(
        self,
        name: str,
        accounts: list[str],
        *,
        ttl_s: float = 10,
        tick_s: float = 0.05,
        start: Callable[[str, LeaseGuard], Awaitable[None]] | None = None,
        stop: Callable[[str, float], Awaitable[None]] | None = None,
    ) -> ClusterCoordinator:
        from redis.asyncio import Redis

        self.running[name] = set()

        async def start_account(account_id: str, guard: LeaseGuard) -> Any:
            if start is not None:
                await start(account_id, guard)
            self.running[name].add(account_id)
            self.taken.append((name, account_id))
            return lambda: {"account": account_id, "lifecycle": "running"}

        async def stop_account(account_id: str, grace_s: float) -> None:
            if stop is not None:
                await stop(account_id, grace_s)
            self.running[name].discard(account_id)

        coordinator = ClusterCoordinator(
            Redis(connection_pool=self.client.connection_pool),
            self.keys,
            accounts,
            start_account=start_account,
            stop_account=stop_account,
            clock=RealClock(),
            gateway_id=name,
            ttl_s=ttl_s,
            tick_s=tick_s,
        )
        self.made.append(coordinator)
        return coordinator

    def run_by_anyone(self) -> set[str]:
        return set().union(*self.running.values())

    async def until(self, done: Callable[[], bool], rounds: int = 200) -> bool:
        for _ in range(rounds):
            if done():
                return True
            await asyncio.sleep(0.05)
        return done()

    async def kill(self, coordinator: ClusterCoordinator) -> None:
        """As kill -9: its rounds, renewals and listening end; it says no goodbye (it stays
        among the gateways alive until its heartbeat ends, its leases until they expire)."""
        for task in (coordinator._task, coordinator._renewing, coordinator._listening):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        coordinator._task = coordinator._renewing = coordinator._listening = None

    async def taken_during(self, rounds: int = 20) -> list[tuple[str, str]]:
        """The accounts taken during ``rounds`` more rounds (none: settled, nothing
        bounces)."""
        taken = len(self.taken)
        for _ in range(rounds):
            await asyncio.sleep(0.05)
        return self.taken[taken:]

    async def stop_all(self) -> None:
        for coordinator in self.made:
            if coordinator._task is not None:
                await coordinator.stop(0)


async def test_a_gateway_limited_to_some_accounts_leaves_no_account_unrun(
    aclient: Any, keys: LeaseKeys
) -> None:
    """A runs all 12 accounts, B only a01 and a02 (``--accounts a01,a02``): every account
    is run by one of them, B runs one of its two, and nothing moves once settled."""
    everyone = [f"a{i:02d}" for i in range(1, 13)]
    gateways = Gateways(aclient, keys)
    a = gateways.gateway("A", everyone)
    b = gateways.gateway("B", ["a01", "a02"])
    try:
        await a.start()
        await b.start()
        settled = await gateways.until(
            lambda: gateways.run_by_anyone() == set(everyone) and len(gateways.running["B"]) == 1
        )
        assert settled, gateways.running
        assert gateways.running["B"] <= {"a01", "a02"}
        assert len(gateways.running["A"]) == 11
        assert not gateways.running["A"] & gateways.running["B"]
        assert await gateways.taken_during() == []  # settled: nothing bounces
        assert gateways.run_by_anyone() == set(everyone)
    finally:
        await gateways.stop_all()


async def test_gateways_running_the_same_accounts_still_share_them_evenly(
    aclient: Any, keys: LeaseKeys
) -> None:
    accounts = [f"a{i}" for i in range(6)]
    gateways = Gateways(aclient, keys)
    one, two, three = (gateways.gateway(n, accounts) for n in ("one", "two", "three"))
    try:
        await one.start()
        await two.start()
        await three.start()
        even = await gateways.until(
            lambda: all(len(running) == 2 for running in gateways.running.values())
        )
        assert even, gateways.running
        assert await gateways.taken_during() == []  # settled: nothing bounces
    finally:
        await gateways.stop_all()


async def test_an_account_taken_and_released_between_two_rounds_is_not_unheld_for_a_round(
    aclient: Any, keys: LeaseKeys
) -> None:
    """Beyond its share a gateway takes only an account nobody held for a round; one that
    another gateway took and released between its two looks was held (its fencing token
    moved): taken beyond the share, it would stay there and leave the spread uneven."""
    gateways = Gateways(aclient, keys)
    b = gateways.gateway("B", ["x"], tick_s=0.05)
    b.holders = {"x": None}
    assert await b._unheld_for_a_round() == set()  # (first seen unheld)
    other = Leases(aclient, keys, "A", ttl_s=30)
    lease = await other.acquire("x")
    assert lease is not None
    await other.release(lease)
    await asyncio.sleep(0.1)  # (two of B's rounds)
    assert await b._unheld_for_a_round() == set()  # held meanwhile: a new round begins
    await asyncio.sleep(0.1)
    assert await b._unheld_for_a_round() == {"x"}


async def test_a_start_that_fails_gives_the_account_back_and_is_tried_again(
    aclient: Any, keys: LeaseKeys, caplog: pytest.LogCaptureFixture, redis_url: str
) -> None:
    """The first start raises (a Redis blip while the account is built): logged with its
    own error, not as Redis unreachable; the lease is released and the account started
    again."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    failures = [RedisConnectionError("Connection reset by peer")]

    async def start(account_id: str, guard: LeaseGuard) -> None:
        if failures:
            raise failures.pop()

    gateways = Gateways(aclient, keys)
    cluster = gateways.gateway("A", ["acc"], start=start)
    try:
        await cluster.start()
        assert await gateways.until(lambda: gateways.running["A"] == {"acc"})
        assert "Connection reset by peer" in caplog.text
        assert "reason=start_failed" in caplog.text
        assert "reason=redis_unreachable" not in caplog.text
    finally:
        await gateways.stop_all()


async def test_an_account_whose_start_failed_is_taken_by_another_gateway_at_once(
    aclient: Any, keys: LeaseKeys
) -> None:
    """A's start of the account fails, and A tries again only ten (long) rounds later:
    its lease was released, so B takes the account long before the lease's TTL."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    failed = asyncio.Event()

    async def start(account_id: str, guard: LeaseGuard) -> None:
        failed.set()
        raise RedisConnectionError("Connection reset by peer")

    gateways = Gateways(aclient, keys)
    a = gateways.gateway("A", ["acc"], start=start, ttl_s=60, tick_s=10)
    b = gateways.gateway("B", ["acc"], ttl_s=60)
    try:
        await a.start()
        await asyncio.wait_for(failed.wait(), 10)
        await b.start()
        assert await gateways.until(lambda: gateways.running["B"] == {"acc"}), gateways.running
    finally:
        await gateways.stop_all()


async def test_a_stop_that_fails_at_a_hand_over_still_gives_the_account_up(
    aclient: Any, keys: LeaseKeys, caplog: pytest.LogCaptureFixture
) -> None:
    """A hands an account over to B, and that stop raises (a Redis blip as the cut turns
    are kept): the account's lease goes all the same, so once B is gone too, A runs both
    accounts again; none is left held and unrun."""
    failed = asyncio.Event()
    b_gone = asyncio.Event()

    async def stop(account_id: str, grace_s: float) -> None:
        if not failed.is_set():
            failed.set()
            gateways.running["A"].discard(account_id)  # (its runner went before the error)
            await b_gone.wait()
            raise ConnectionError("Redis blip while keeping the cut turns")

    gateways = Gateways(aclient, keys)
    a = gateways.gateway("A", ["x", "y"], ttl_s=2, stop=stop)
    b = gateways.gateway("B", ["x", "y"], ttl_s=2)
    try:
        await a.start()
        assert await gateways.until(lambda: gateways.running["A"] == {"x", "y"})
        await b.start()
        await asyncio.wait_for(failed.wait(), 10)  # A hands one over; its stop will fail
        await b.stop(0)
        b_gone.set()
        assert await gateways.until(lambda: gateways.running["A"] == {"x", "y"}), gateways.running
        assert "reason=stop_failed" in caplog.text
    finally:
        await gateways.stop_all()


async def test_gateway_status_shows_an_account_whose_status_has_only_its_holder(
    aclient: Any, keys: LeaseKeys, redis_url: str, redis_namespace: str
) -> None:
    """A status written while the account was still starting holds only the gateway:
    ``gateway status`` still shows the account, with the default fields."""
    from wechat_sdk.cluster.status import cluster_status
    from wechat_sdk.config.loader import parse_config

    lease = await Leases(aclient, keys, "gw-a", ttl_s=30).acquire("acc")
    assert lease is not None
    await aclient.set(keys.status("acc"), json.dumps({"holder": "gw-a"}), px=30_000)
    config = parse_config(
        json.dumps(
            {
                "channels": {
                    "wechat": {
                        "store": {"kind": "redis", "url": redis_url, "namespace": redis_namespace},
                        "accounts": {"acc": {}},
                    }
                }
            }
        )
    )
    [row] = cluster_status(config)
    assert row["account"] == "acc" and row["gateway"] == "gw-a"
    assert row["state"] == "stopped" and row["queue_depth"] == 0


class Recording:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_text(self, conversation_id: str, text: str, *args: Any) -> None:
        self.sent.append(text)


async def test_a_clean_stop_keeps_renewing_through_a_grace_longer_than_the_lease(
    aclient: Any, keys: LeaseKeys
) -> None:
    """A reply that is ready past the lease's TTL, within ``--grace``, still goes out:
    the lease is renewed until its account was stopped and released."""
    puppet = Recording()
    guards: dict[str, LeaseGuard] = {}
    lease_during_stop: list[str | None] = []

    async def start(account_id: str, guard: LeaseGuard) -> None:
        guards[account_id] = guard

    async def stop(account_id: str, grace_s: float) -> None:
        await asyncio.sleep(2.0)  # the reply is ready past the TTL (1.2 s)
        lease_during_stop.append(await aclient.get(keys.lease(account_id)))
        sending = FencedPuppet(puppet, guards[account_id]).send_text("alice", "the reply")
        await asyncio.wait_for(sending, 3)

    gateways = Gateways(aclient, keys)
    cluster = gateways.gateway("A", ["acc"], ttl_s=1.2, start=start, stop=stop)
    await cluster.start()
    await cluster.stop(grace_s=5)
    assert puppet.sent == ["the reply"]
    assert lease_during_stop[0] is not None and lease_during_stop[0].startswith("A ")
    assert await aclient.get(keys.lease("acc")) is None  # released at the end


async def test_a_clean_stop_hands_each_account_over_as_soon_as_it_is_released(
    aclient: Any, keys: LeaseKeys
) -> None:
    """A's slow account (a reply in flight) does not hold back the others: B takes the
    one A released while A is still stopping the other."""
    accounts = ["a1", "a2", "a3", "a4"]
    slow_done = asyncio.Event()
    slow: list[str] = []

    async def stop(account_id: str, grace_s: float) -> None:
        if account_id in slow:
            await slow_done.wait()

    gateways = Gateways(aclient, keys)
    a = gateways.gateway("A", accounts, stop=stop)
    b = gateways.gateway("B", accounts)
    try:
        await a.start()
        await b.start()
        assert await gateways.until(lambda: len(gateways.running["B"]) == 2)
        quick, slow_one = sorted(gateways.running["A"])
        slow.append(slow_one)
        stopping = asyncio.ensure_future(a.stop(grace_s=10))
        taken = await gateways.until(lambda: quick in gateways.running["B"], rounds=100)
        slow_done.set()
        await stopping
        assert taken, "B took the released account only once A's last stop ended"
        assert await gateways.until(lambda: gateways.running["B"] == set(accounts))
    finally:
        slow_done.set()
        await gateways.stop_all()


async def test_a_full_redis_is_said_once_as_full_not_as_unreachable(
    own_redis: Any, redis_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """maxmemory reached (noeviction): every write refused. Said at error level with what
    to change, once (not each round), and never as Redis unreachable."""
    from redis.asyncio import Redis

    caplog.set_level(logging.INFO)
    client = Redis.from_url(own_redis.url, decode_responses=True)
    keys = LeaseKeys(Keys("wechat", redis_namespace))
    gateways = Gateways(client, keys)
    cluster = gateways.gateway("A", ["acc"])
    try:
        await cluster.start()
        await client.config_set("maxmemory", 1)
        assert await gateways.until(lambda: "reason=redis_full" in caplog.text)
        for _ in range(20):  # twenty more rounds
            await asyncio.sleep(0.05)
        assert caplog.text.count("reason=redis_full") == 1
        assert "maxmemory" in caplog.text
        assert "reason=redis_unreachable" not in caplog.text
        assert "reason=redis_back" not in caplog.text
    finally:
        await client.config_set("maxmemory", 0)
        await gateways.stop_all()
        await client.aclose()


async def test_a_read_only_redis_is_said_as_such_not_as_an_acl_refusal(
    own_redis: Any, redis_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A managed failover makes the old primary a replica for a moment (READONLY): the
    log said to check the Redis user's ACL permissions."""
    from redis.asyncio import Redis

    caplog.set_level(logging.INFO)
    client = Redis.from_url(own_redis.url, decode_responses=True)
    keys = LeaseKeys(Keys("wechat", redis_namespace))
    gateways = Gateways(client, keys)
    cluster = gateways.gateway("A", ["acc"])
    try:
        await cluster.start()
        await client.execute_command("REPLICAOF", "127.0.0.1", "9")  # (no primary there)
        assert await gateways.until(lambda: "reason=redis_read_only" in caplog.text)
        assert "check the Redis user's ACL" not in caplog.text
    finally:
        await client.execute_command("REPLICAOF", "NO", "ONE")
        await gateways.stop_all()
        await client.aclose()


async def test_a_full_redis_at_start_says_so(own_redis: Any, redis_namespace: str) -> None:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from wechat_sdk.stores.redis.store import unreachable

    client = Redis.from_url(own_redis.url, decode_responses=True)
    await client.config_set("maxmemory", 1)
    cluster = Gateways(client, LeaseKeys(Keys("wechat", redis_namespace))).gateway("A", ["acc"])
    try:
        with pytest.raises(RedisError) as err:
            await cluster.start()
        message = str(unreachable(own_redis.url, err.value))
        assert "Redis is full (maxmemory)" in message
        assert "redis-server runs" not in message
    finally:
        await client.config_set("maxmemory", 0)
        await client.aclose()


async def test_a_round_learns_the_wechat_ids_of_the_accounts_others_hold(
    aclient: Any, keys: LeaseKeys
) -> None:
    """From the statuses the other gateways wrote: one without an id (still starting),
    one that is not JSON, and an account nobody holds teach nothing; nor does a round
    fail on them."""
    from redis.asyncio import Redis

    from wechat_sdk.own_accounts import OwnAccounts

    async def start_account(account_id: str, guard: LeaseGuard) -> Any:
        return lambda: {}

    async def stop_account(account_id: str, grace_s: float) -> None:
        pass

    own = OwnAccounts()
    coordinator = ClusterCoordinator(
        Redis(connection_pool=aclient.connection_pool),
        keys,
        ["mine"],
        start_account=start_account,
        stop_account=stop_account,
        clock=RealClock(),
        gateway_id="gw-a",
        peers=["mine", "theirs", "starting", "garbled", "unheld"],
        own_accounts=own,
    )
    statuses = {
        "theirs": json.dumps({"holder": "gw-b", "user_id": "wxid_theirs"}),
        "starting": json.dumps({"holder": "gw-b"}),
        "garbled": "{not json",
    }
    for account_id, status in statuses.items():
        await aclient.set(keys.status(account_id), status, px=30_000)
    try:
        await coordinator.start()
        assert set(coordinator.held) == {"mine"}
        assert own.account_of("wxid_theirs") == "theirs"
    finally:
        await coordinator.stop(0)


async def test_a_stop_during_a_hand_over_lets_that_account_stop_and_gives_it_up(
    aclient: Any, keys: LeaseKeys
) -> None:
    """A gateway stopped (or its config reloaded: gateway restart) while it hands an
    account over to a gateway that just started: that account's stop (its replies in
    flight, their grace) was cancelled half way, its lease never released (the other
    gateway waited a whole TTL for it) and, on a reload, its runner was left running.
    Now the stop lets the hand-over end, then stops the rest."""
    stopping = asyncio.Event()
    finish = asyncio.Event()
    stops: list[tuple[str, str]] = []

    async def slow_stop(account_id: str, grace_s: float) -> None:
        stopping.set()
        try:
            await finish.wait()  # a reply in flight, within its grace
        except asyncio.CancelledError:
            stops.append((account_id, "cancelled"))
            raise
        stops.append((account_id, "stopped"))

    gateways = Gateways(aclient, keys)
    a = gateways.gateway("A", ["a1", "a2"], ttl_s=30, stop=slow_stop)
    b = gateways.gateway("B", ["a1", "a2"], ttl_s=30)
    try:
        await a.start()
        assert gateways.running["A"] == {"a1", "a2"}
        await b.start()  # A now holds more than its share: it hands one over
        await asyncio.wait_for(stopping.wait(), 10)
        stopped = asyncio.ensure_future(a.stop(grace_s=5))
        await asyncio.sleep(0.3)
        finish.set()
        await asyncio.wait_for(stopped, 10)
        assert stops[0][1] == "stopped", stops
        assert gateways.running["A"] == set()
        # both released at once: B runs them long before the 30 s TTL
        assert await gateways.until(lambda: gateways.running["B"] == {"a1", "a2"}, rounds=60)
    finally:
        finish.set()
        await gateways.stop_all()


def test_the_config_hash_follows_the_accounts_settings_and_leaves_secrets_out() -> None:
    """What a gateway publishes of an account's config (docs/cluster.md): it differs when
    a setting differs, its own or the top level's, and holds nothing of a secret (a
    token, an API key), so that it tells nothing of one, nor differs by one."""
    from wechat_sdk.cluster.membership import config_hash
    from wechat_sdk.config import accounts_of, parse_config

    def hashes(text: str) -> dict[str, str]:
        accounts = accounts_of(parse_config(text)).enabled
        return {a.id: config_hash(a) for a in accounts}

    base = hashes(
        '{channels: {wechat: {puppet: "wechaty-puppet-service", puppetOptions: {token: "t1"},'
        ' accounts: {a: {allowFrom: ["wxid_x"]}, b: {}}}}}'
    )
    other_token = hashes(
        '{channels: {wechat: {puppet: "wechaty-puppet-service", puppetOptions: {token: "t2"},'
        ' accounts: {a: {allowFrom: ["wxid_x"]}, b: {}}}}}'
    )
    other_allow = hashes(
        '{channels: {wechat: {puppet: "wechaty-puppet-service", puppetOptions: {token: "t1"},'
        ' accounts: {a: {allowFrom: ["wxid_y"]}, b: {}}}}}'
    )
    other_top = hashes(
        '{channels: {wechat: {puppet: "wechaty-puppet-service", puppetOptions: {token: "t1"},'
        ' textChunkLimit: 500, accounts: {a: {allowFrom: ["wxid_x"]}, b: {}}}}}'
    )
    assert other_token == base
    assert other_allow["a"] != base["a"] and other_allow["b"] == base["b"]
    assert other_top["a"] != base["a"] and other_top["b"] != base["b"]


def test_the_config_hash_leaves_out_what_each_machine_sets_for_itself() -> None:
    """Two gateways of a cluster cannot share a state directory or a health port (two on
    one machine must differ in both), and whether a terminal draws the QR code is that
    machine's: none of it changes how the account answers, so none of it makes the hash
    differ (every such cluster said config_differs at each start)."""
    from wechat_sdk.cluster.membership import config_hash
    from wechat_sdk.config import accounts_of, parse_config

    def hashed(extra: str) -> str:
        (account,) = accounts_of(
            parse_config(f'{{channels: {{wechat: {{puppet: "simulator", {extra}}}}}}}')
        ).enabled
        return config_hash(account)

    one = hashed('stateDir: "/srv/gw1", health: {port: 8081}, qrCode: true')
    two = hashed('stateDir: "/srv/gw2", health: {port: 8082}, qrCode: false')
    assert one == two
    assert hashed('stateDir: "/srv/gw1", dmPolicy: "open", allowFrom: ["*"]') != one


async def _c_joins_a_and_b(
    gateways: Gateways, start: Callable[[str, LeaseGuard], Awaitable[None]]
) -> bool:
    """A and B share six accounts (three each), then C joins, starting its accounts by
    ``start``: whether they end two each."""
    accounts = [f"a{i}" for i in range(6)]
    a, b = (gateways.gateway(n, accounts) for n in ("A", "B"))
    c = gateways.gateway("C", accounts, start=start)
    await a.start()
    await b.start()
    assert await gateways.until(
        lambda: len(gateways.running["A"]) == len(gateways.running["B"]) == 3
    ), gateways.running
    await c.start()
    return await gateways.until(
        lambda: all(len(running) == 2 for running in gateways.running.values())
    )


async def test_a_gateway_slow_to_start_its_accounts_still_gets_its_share(
    aclient: Any, keys: LeaseKeys
) -> None:
    """C joins A and B (three accounts each) and starts each account slowly (a login on
    busy cores: its rounds are late). The account A and B hand it while it starts another
    stays free for more than a round: taken back beyond a share, it would stay there for
    good (two, two and two never reached). C says each round it has room, so it gets it."""

    async def slow(account_id: str, guard: LeaseGuard) -> None:
        await asyncio.sleep(0.4)  # (eight of the others' rounds)

    gateways = Gateways(aclient, keys)
    try:
        assert await _c_joins_a_and_b(gateways, slow), gateways.running
        assert await gateways.taken_during() == []  # settled: nothing bounces
    finally:
        await gateways.stop_all()


async def test_a_room_its_gateway_stopped_saying_does_not_leave_accounts_unrun(
    aclient: Any, keys: LeaseKeys
) -> None:
    """D joins A and B (three accounts each), says it has room for two, and dies (kill -9):
    it stays among the gateways alive until its heartbeat ends (a long TTL here). The two
    accounts A and B hand over for it are not left unrun that long: a room older than half
    a TTL is not waited for, so they are taken back beyond a share."""
    accounts = [f"a{i}" for i in range(6)]
    gateways = Gateways(aclient, keys)
    a, b = (gateways.gateway(n, accounts, ttl_s=2) for n in ("A", "B"))
    d = gateways.gateway("D", accounts, ttl_s=60)
    try:
        await a.start()
        await b.start()
        assert await gateways.until(
            lambda: len(gateways.running["A"]) == len(gateways.running["B"]) == 3
        ), gateways.running
        await d.start()  # its first round: everything held, so it says it has room for two
        await gateways.kill(d)
        assert json.loads(await aclient.hget(keys.rooms, "D"))["room"] == 2
        handed = await gateways.until(lambda: gateways.run_by_anyone() != set(accounts))
        assert handed, gateways.running  # (A and B hand over an account each for D)
        assert await gateways.until(lambda: gateways.run_by_anyone() == set(accounts)), (
            gateways.running
        )
        assert await aclient.zscore(keys.gateways, "D") is not None  # (still "alive")
    finally:
        await gateways.stop_all()


async def test_a_kept_account_is_not_handed_over_for_a_room_a_free_account_fills(
    aclient: Any, keys: LeaseKeys
) -> None:
    """C (written here by hand: alive, it may run every account) hands y over after a Redis
    outage and says it has room for one: it takes y again at its next round. A, holding a3
    beyond its share, does not stop a3 for that room too (y fills it): a3 would be free
    with y, and one of them taken back beyond a share, for nothing."""
    accounts = ["a1", "a2", "a3", "y"]
    stops: list[str] = []

    async def stop(account_id: str, grace_s: float) -> None:
        stops.append(account_id)

    async def c_says(room: int) -> None:
        seconds, micros = await aclient.time()
        at = int(seconds) + int(micros) / 1e6
        await aclient.zadd(keys.gateways, {"C": at + 60})
        await aclient.hset(keys.members, "C", json.dumps(accounts))
        await aclient.hset(keys.rooms, "C", json.dumps({"room": room, "refuses": [], "at": at}))

    c = Leases(aclient, keys, "C", ttl_s=60)
    await c_says(0)
    a3, y = await c.acquire("a3"), await c.acquire("y")
    assert a3 is not None and y is not None
    gateways = Gateways(aclient, keys)
    a = gateways.gateway("A", accounts, stop=stop)
    try:
        await a.start()
        assert gateways.running["A"] == {"a1", "a2"}  # (its share: two)
        await c.release(a3)  # C gives a3 up: nobody else takes it, so A keeps it
        assert await gateways.until(lambda: "a3" in gateways.running["A"]), gateways.running
        await c.release(y)
        await c_says(1)
        for _ in range(10):  # ten of A's rounds
            await asyncio.sleep(0.05)
        await c.acquire("y")  # (C's next round)
        await c_says(0)
        for _ in range(10):
            await asyncio.sleep(0.05)
        assert stops == [], stops
        assert gateways.running["A"] == {"a1", "a2", "a3"}
    finally:
        await gateways.stop_all()


async def test_a_gateway_whose_start_of_an_account_failed_once_still_gets_its_share(
    aclient: Any, keys: LeaseKeys
) -> None:
    """C joins A and B (three accounts each); its first start fails (a Redis blip). That
    account, released, is taken back beyond a share by A or B, and C, which says it
    refuses it, is not handed it again: the gateway holding it hands C another of its
    accounts instead, and keeps the refused one in its share (two, two and two, not three,
    two and one for good)."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    failures = [RedisConnectionError("Connection reset by peer")]

    async def start(account_id: str, guard: LeaseGuard) -> None:
        if failures:
            raise failures.pop()

    gateways = Gateways(aclient, keys)
    try:
        assert await _c_joins_a_and_b(gateways, start), gateways.running
        assert not failures  # (C's start failed once)
        assert await gateways.taken_during() == []  # settled: nothing bounces
    finally:
        await gateways.stop_all()


async def test_nine_accounts_on_four_gateways_end_three_two_two_two(
    aclient: Any, keys: LeaseKeys
) -> None:
    """Shares are rounded up (nine accounts, four gateways: three each), so three gateways
    filling theirs left the fourth idle for good. A gateway holding two more than another
    that has room hands it one: the spread ends within one account, then nothing moves."""
    accounts = [f"a{i}" for i in range(9)]
    gateways = Gateways(aclient, keys)
    made = [gateways.gateway(n, accounts) for n in ("A", "B", "C", "D")]
    try:
        for coordinator in made[:3]:
            await coordinator.start()
        assert await gateways.until(
            lambda: sorted(len(r) for r in gateways.running.values()) == [0, 3, 3, 3]
        ), gateways.running
        await made[3].start()

        def even() -> bool:
            counts = [len(r) for r in gateways.running.values()]
            return sum(counts) == 9 and max(counts) - min(counts) <= 1

        assert await gateways.until(even), gateways.running
        assert await gateways.taken_during(30) == []  # settled: nothing bounces
        assert even(), gateways.running
    finally:
        await gateways.stop_all()


async def test_an_account_handed_over_to_even_the_spread_out_is_not_taken_back(
    aclient: Any, keys: LeaseKeys
) -> None:
    """Nine accounts on A, B and C (three each); D joins and starts each account slowly (a
    login takes a while). A, B and C each hand D one account to even the spread out; the
    one that handed one over, below its share now, does not take a free one back, nor
    does another of them: each would hold two more than D again, and hand one over again
    (each move stops an account and starts it elsewhere: they bounced, six moves where
    three do). Every account that moves goes to D."""

    async def slow(account_id: str, guard: LeaseGuard) -> None:
        await asyncio.sleep(0.2)  # (four of the others' rounds)

    accounts = [f"a{i}" for i in range(9)]
    gateways = Gateways(aclient, keys)
    made = [gateways.gateway(n, accounts) for n in ("A", "B", "C")]
    made.append(gateways.gateway("D", accounts, start=slow))
    try:
        for coordinator in made[:3]:
            await coordinator.start()
        assert await gateways.until(
            lambda: sorted(len(r) for r in gateways.running.values()) == [0, 3, 3, 3]
        ), gateways.running
        before = len(gateways.taken)
        await made[3].start()

        def even() -> bool:
            counts = [len(r) for r in gateways.running.values()]
            return sum(counts) == 9 and max(counts) - min(counts) <= 1

        assert await gateways.until(even), gateways.running
        for _ in range(30):  # (and settled)
            await asyncio.sleep(0.05)
        moved = gateways.taken[before:]
        assert [gateway for gateway, _ in moved] == ["D"] * len(moved), moved
        assert even(), gateways.running
    finally:
        await gateways.stop_all()


async def test_a_stop_while_the_first_round_says_alive_leaves_the_cluster_for_good(
    aclient: Any, keys: LeaseKeys
) -> None:
    """A stopped while its start's first round waits on Redis to say it is alive: its
    round said so after the stop had left (its heartbeat, members and room back in Redis),
    so the others counted it alive for up to a TTL and left its share of the accounts
    unrun for it. Now the stop ends that round: A is gone from the cluster, B runs both."""
    gateways = Gateways(aclient, keys)
    b = gateways.gateway("B", ["a1", "a2"])
    a = gateways.gateway("A", ["a1", "a2"], ttl_s=60)
    asking = asyncio.Event()
    answer = asyncio.Event()
    time = a._r.time

    async def slow_time() -> Any:  # (Redis slow to answer the round's first command)
        asking.set()
        await answer.wait()
        return await time()

    a._r.time = slow_time  # type: ignore[method-assign]
    try:
        await b.start()
        starting = asyncio.ensure_future(a.start())
        await asyncio.wait_for(asking.wait(), 10)
        await asyncio.wait_for(a.stop(0), 10)
        answer.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(starting, 10)
        assert await aclient.zscore(keys.gateways, "A") is None
        assert await aclient.hget(keys.members, "A") is None
        assert await aclient.hget(keys.rooms, "A") is None
        assert await gateways.until(lambda: gateways.running["B"] == {"a1", "a2"})
        assert gateways.running["A"] == set()
    finally:
        answer.set()
        await gateways.stop_all()


async def test_a_stop_while_the_first_round_starts_an_account_leaves_it_to_the_others(
    aclient: Any, keys: LeaseKeys
) -> None:
    """A stopped while its start's first round is starting an account: the stop handed
    that account over (its lease released, B took it), then the start went on and A ran it
    too, two gateways running one account, and published its room again after leaving.
    Now the stop ends that round first: A runs nothing, B runs both, A is gone."""
    starting_one = asyncio.Event()
    started = asyncio.Event()

    async def slow_start(account_id: str, guard: LeaseGuard) -> None:
        starting_one.set()
        await started.wait()  # (a transport slow to start)

    gateways = Gateways(aclient, keys)
    a = gateways.gateway("A", ["a1", "a2"], start=slow_start)
    b = gateways.gateway("B", ["a1", "a2"])
    try:
        starting = asyncio.ensure_future(a.start())
        await asyncio.wait_for(starting_one.wait(), 10)
        await asyncio.wait_for(a.stop(0), 10)
        started.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(starting, 10)
        await b.start()
        assert await gateways.until(lambda: gateways.running["B"] == {"a1", "a2"})
        assert gateways.running["A"] == set()
        assert await aclient.zscore(keys.gateways, "A") is None
        assert await aclient.hget(keys.rooms, "A") is None
    finally:
        started.set()
        await gateways.stop_all()
