"""The cluster loop of one gateway: which accounts it runs, by lease.

Every ``tick`` (a second): the gateway says it is alive (``gateways``, with Redis's own
time, so machines' clocks need not agree) and which accounts it may run (``members``: all
the enabled ones, or its ``--accounts``), takes free accounts up to its fair share, hands
over the accounts it holds beyond that share (stopped, then released: another gateway
takes each at once), and writes each account's status for ``gateway status`` on any
machine. In a task of its own, every quarter of the TTL, it renews its leases and stops an
account whose lease it lost.

The fair share: each account counts for ``1/n`` of each of the ``n`` live gateways that may
run it; a gateway's share is its sum, rounded up (gateways that all run the same accounts:
the accounts divided by the gateways). Shares rounded up may leave a gateway idle (nine
accounts on four gateways: three each), so a gateway also hands one account, once a round,
to a gateway holding at least two fewer that has room for it; a free account is left, within
the share too, to a gateway with room that holds fewer (taken, it would be handed over
again). Each round ends by publishing the gateway's room
(``gateway-rooms``: how many more accounts it takes at its share, and the accounts whose
start failed there, with Redis's time: a room older than half a TTL is not waited for, its
gateway having died or its rounds being stuck). An account left unheld for a round is
taken by any gateway that may run it, whatever its share (the shares of gateways limited
to different accounts may not fit every account), unless another live gateway that may
run it has room for it (a gateway slow to start its accounts: its rounds are late): kept
there, not counted in its share, until the gateways alive change or another gateway says
it has room (then handed over to it; or, when that gateway may not run it or refuses it,
another account held here is, and the kept one counts in the share in its place), so none
bounces between two and a gateway late to take its share still gets it.
Each round also reads the statuses the other gateways wrote, for the WeChat id of each
account they hold: a message from one of those is no user's
(:class:`~wechat_sdk.own_accounts.OwnAccounts`).

Each round also publishes a hash of the config of each account this gateway may run
(``gateway-configs``), and says once each account another gateway runs by another config.

Redis unreachable: nothing is renewed, so sends wait (:class:`~.fence.LeaseGuard`; a
proactive send at most the TTL), and accounts keep what they hold; when Redis answers
again, a lease that is still ours goes on, one that expired meanwhile stops its account. A
Redis that came back empty (restarted without persistence) is said once, at error level. A
Redis that answers with an error (full: maxmemory reached) is reachable: said as such, once
a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import json
import logging
import math
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from wechat_sdk.clock import Clock
from wechat_sdk.cluster.fence import LeaseGuard, StatusWriter
from wechat_sdk.cluster.leases import LEASE_TTL_S, Lease, LeaseKeys, Leases
from wechat_sdk.logtext import shown
from wechat_sdk.own_accounts import OwnAccounts
from wechat_sdk.puppets import SharedRedis

__all__ = ["ClusterCoordinator", "HeldAccount", "default_gateway_id"]

log = logging.getLogger("wechat_sdk.cluster")

#: seconds between two rounds of the loop (taking free accounts, heartbeats)
TICK_S = 1.0


def default_gateway_id() -> str:
    """``<host>:<pid>:<4 hex>``: unique per process, readable in ``gateway status``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:4]}"


@dataclass
class HeldAccount:
    """An account this gateway runs, with its lease."""

    guard: LeaseGuard
    renewed_at: float = 0.0
    status: Callable[[], dict[str, Any]] = field(default=lambda: {})


StartAccount = Callable[[str, LeaseGuard], Awaitable[Callable[[], dict[str, Any]]]]
StopAccount = Callable[[str, float], Awaitable[None]]

#: seconds a handed-over account's replies in flight get at a rebalancing
HANDOVER_GRACE_S = 10.0

#: rounds an account whose start failed here waits before this gateway tries it again
#: (another gateway may take it at once)
START_RETRY_TICKS = 10

#: seconds between two lines saying Redis refuses commands (it is full, say)
REFUSED_SAID_EVERY_S = 60.0

#: the part of the lease's TTL for which another gateway's room, as its round published
#: it, is waited for (see ClusterCoordinator._read_rooms)
ROOM_TRUSTED_TTLS = 0.5


class ClusterCoordinator:
    """Runs the accounts whose leases this gateway holds.

    ``start_account(id, guard)`` starts an account (returning a function giving its status
    as JSON); ``stop_account(id, grace_s)`` stops it (what it holds kept in the shared
    store, for the next holder). ``own_accounts`` learns the WeChat id of each of
    ``peers`` (the cluster's accounts) another gateway holds, from its status.
    """

    def __init__(
        self,
        client: Any,
        keys: LeaseKeys,
        accounts: Sequence[str],
        *,
        start_account: StartAccount,
        stop_account: StopAccount,
        clock: Clock,
        gateway_id: str | None = None,
        ttl_s: float = LEASE_TTL_S,
        tick_s: float = TICK_S,
        peers: Sequence[str] = (),
        own_accounts: OwnAccounts | None = None,
        config_hashes: Mapping[str, str] | None = None,
    ) -> None:
        self._r = client
        self.keys = keys
        self.accounts = list(accounts)
        self.peers = list(peers)
        self.own_accounts = own_accounts
        #: a hash of each account's config, as this gateway runs it (published each round:
        #: the cluster's gateways compare theirs, see _say_configs_differ)
        self.config_hashes = {a: h for a, h in (config_hashes or {}).items() if a in accounts}
        #: (gateway, account, its hash) said to differ from this gateway's: said once
        self._differs_said: set[tuple[str, str, str]] = set()
        self.gateway_id = gateway_id or default_gateway_id()
        self.ttl_s = ttl_s
        self.tick_s = tick_s
        self.clock = clock
        self.leases = Leases(client, keys, self.gateway_id, ttl_s)
        self._statuses = StatusWriter(client, keys)
        self.held: dict[str, HeldAccount] = {}
        #: accounts being stopped here: not taken again until their stop is over
        self.stopping: set[str] = set()
        self._start_account = start_account
        self._stop_account = stop_account
        self._task: asyncio.Task[None] | None = None
        self._renewing: asyncio.Task[None] | None = None
        self._listening: asyncio.Task[None] | None = None
        self._released = asyncio.Event()
        #: a stop began: the loops end at their next turn even if a library under them
        #: swallowed the cancellation (seen: a stop waiting forever on a cancelled loop)
        self._stopping = False
        #: the held accounts are all handed over: the renewals end (not before: a reply
        #: finishing within the grace needs its lease confirmed)
        self._renewals_over = False
        self._refusals: set[asyncio.Task[None]] = set()
        #: hand-overs under way (see _hand_over)
        self._hand_overs: set[asyncio.Task[None]] = set()
        self._reachable = True
        #: when Redis last refused a command here, to say it once a minute
        self._refused_said_at: float | None = None
        #: each free account: since when this gateway sees it unheld, and its fencing token
        #: then (a token moved on: another gateway held it meanwhile, between two looks)
        self._unheld_since: dict[str, tuple[float, object]] = {}
        #: accounts taken beyond the share (nobody else took them): handed over only to a
        #: gateway that says it has room for them
        self._kept: set[str] = set()
        #: each other live gateway's room and the accounts it refuses, as last published
        #: (a room older than ROOM_TRUSTED_TTLS of the TTL left out: see _read_rooms)
        self._rooms: dict[str, int] = {}
        self._refuses: dict[str, frozenset[str]] = {}
        #: each of those gateways' held accounts and the time of its room (see _even_out)
        self._held_by: dict[str, int] = {}
        self._room_at: dict[str, float] = {}
        #: the time of the room for which an account was last handed to each gateway to
        #: even the spread out: not again before that gateway says its room anew
        self._evened_for: dict[str, float] = {}
        #: accounts whose last start here failed (published: no room here for them)
        self._failed_here: set[str] = set()
        #: the gateways alive and their accounts, as last read: kept accounts are looked
        #: at afresh when they change
        self._members: dict[str, frozenset[str] | None] = {}
        #: accounts whose start failed here, and when they may be tried here again
        self._retry_at: dict[str, float] = {}
        self._epoch: str | None = None
        #: every account's holder as last read (``gateway status``)
        self.holders: dict[str, str | None] = {}
        #: Redis's time as this round began (seconds), and how far ahead of this gateway's
        #: clock it was then (the time of the room the round publishes, at its end)
        self._redis_now = 0.0
        self._redis_ahead = 0.0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Check Redis, note its epoch, run one round at once, then the loop.

        A :meth:`stop` meanwhile ends that first round where it is (as it ends a round of
        the loop), and the start returns without starting the loop: nothing said to Redis
        after the stop left the cluster."""
        if self._stopping:
            return
        # in a task, for a stop to cancel; in this context (the caller's), as it ran before
        first = self._task = asyncio.ensure_future(self._first_round())
        try:
            await first
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._stopping or (task is not None and task.cancelling()):
                raise  # (the start itself was cancelled)
            return
        finally:
            if self._task is first:
                self._task = None
        if self._stopping:  # (the round ended just before the stop came)
            return
        loop = asyncio.get_running_loop()
        # (each in a context of its own: the gateway's, for every account; in the context
        # of the task that started the gateway, an account's, their lines showed it)
        self._task = loop.create_task(self._loop(), name="cluster", context=contextvars.Context())
        # renewals in a task of their own: taking accounts up never delays them
        self._renewing = loop.create_task(
            self._renew_loop(), name="cluster-renew", context=contextvars.Context()
        )
        self._listening = loop.create_task(
            self._listen(), name="cluster-listen", context=contextvars.Context()
        )

    async def stop(self, grace_s: float = HANDOVER_GRACE_S) -> None:
        """Stop every held account (replies in flight get ``grace_s``) and release its
        lease: other gateways take them at once. For good: the round under way (the
        start's first one too) ends before this gateway leaves the cluster."""
        self._stopping = True
        self._released.set()  # (wakes the loop between two rounds)
        for task in (self._task, self._listening):
            if task is not None:
                # (the start's first round failing, Redis unreachable: the start says it)
                with contextlib.suppress(Exception):
                    await self._cancelled(task)
        self._task = self._listening = None
        # gone from the gateways alive first: the others' shares count without this one,
        # so each account is taken as soon as it is released, not after the last
        await self._leave()
        # an account a refused write is stopping now: that stop ends first (it was lost),
        # and so does a hand-over the round under way had begun (its account released)
        await asyncio.gather(*self._refusals, *self._hand_overs, return_exceptions=True)
        try:
            # the leases are renewed until each account is stopped and released
            await asyncio.gather(*(self._hand_over(a, grace_s) for a in list(self.held)))
        finally:
            self._renewals_over = True
            if self._renewing is not None:
                await self._cancelled(self._renewing)
            self._renewing = None
            await self._r.aclose()

    async def _first_round(self) -> None:
        await self._check_epoch()
        await self._round()

    async def _leave(self) -> None:
        try:
            pipe = self._r.pipeline(transaction=False)
            pipe.zrem(self.keys.gateways, self.gateway_id)
            pipe.hdel(self.keys.members, self.gateway_id)
            pipe.hdel(self.keys.configs, self.gateway_id)
            pipe.hdel(self.keys.rooms, self.gateway_id)
            await pipe.execute()
        except Exception as exc:  # its heartbeat ends within the TTL
            log.warning("could not say goodbye to Redis: %s", _reason(exc), extra={"account": "-"})

    async def _cancelled(self, task: asyncio.Task[None]) -> None:
        """Cancel ``task`` and wait for its end, cancelling it again each second while
        something under it swallowed the cancellation."""
        while not task.done():
            task.cancel()
            second = asyncio.ensure_future(self.clock.sleep(1.0))
            await asyncio.wait({task, second}, return_when=asyncio.FIRST_COMPLETED)
            second.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            task.result()

    async def _loop(self) -> None:
        while not self._stopping:
            await self._next_round()
            if self._stopping:
                return
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis unreachable: hold on, try again next round
                if _answered(exc):  # (it is reachable: it said no)
                    self._say_refused(exc)
                    continue
                if self._reachable:
                    log.error(
                        "Redis unreachable: accounts stop sending and keep what they hold "
                        "until it answers again: %s reason=redis_unreachable",
                        _reason(exc),
                        extra={"account": "-"},
                    )
                self._reachable = False

    def _say_refused(self, exc: Exception) -> None:
        """Redis answered with an error (full, a command not allowed): said once a
        minute, not each round, and Redis is not taken for unreachable."""
        now = self.clock.now()
        if self._refused_said_at is not None and now - self._refused_said_at < REFUSED_SAID_EVERY_S:
            return
        self._refused_said_at = now
        if _read_only(exc):
            log.error(
                "Redis takes no writes (it is a replica now: a failover under way, or the "
                "store's url names a replica): accounts stop sending and keep what they "
                "hold until it does: %s reason=redis_read_only",
                _reason(exc),
                extra={"account": "-"},
            )
        elif _full(exc):
            log.error(
                "Redis is full (maxmemory): it refuses writes, so accounts cannot be taken "
                "and their writes fail; raise maxmemory in its config, or give it more "
                "memory (docs/cluster.md: Sizing): %s reason=redis_full",
                _reason(exc),
                extra={"account": "-"},
            )
        else:
            log.error(
                "Redis refused a command (check the Redis user's ACL permissions and the "
                "server's version): %s reason=redis_refused",
                _reason(exc),
                extra={"account": "-"},
            )

    async def _next_round(self) -> None:
        """A tick, or sooner: another gateway released an account (a clean stop hands
        its accounts over at once)."""
        tick = asyncio.ensure_future(self.clock.sleep(self.tick_s))
        released = asyncio.ensure_future(self._released.wait())
        try:
            await asyncio.wait({tick, released}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            tick.cancel()
            released.cancel()
        self._released.clear()

    async def _listen(self) -> None:
        """Wake the loop when a gateway says it released an account (Redis pub/sub)."""
        while not self._stopping:
            try:
                async with self._r.pubsub() as pubsub:
                    await pubsub.subscribe(self.keys.released)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._released.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis unreachable: the main loop says it; listen again
                await self.clock.sleep(self.tick_s)

    async def _renew_loop(self) -> None:
        """Renew every held lease each quarter of the TTL (it lives four renewals)."""
        from redis.exceptions import RedisError

        while not self._renewals_over:
            await self.clock.sleep(self.ttl_s / 4)
            try:
                await self._renew()
            except (RedisError, OSError):
                pass  # Redis unreachable or refusing: the main loop says it
            except Exception:  # a fault of ours: said, and the next renewal tries again
                log.exception(
                    "renewing the leases failed reason=renew_failed", extra={"account": "-"}
                )

    # ------------------------------------------------------------ one round

    async def _round(self) -> None:
        if not self._reachable:
            await self._r.ping()
            log.warning("Redis answers again reason=redis_back", extra={"account": "-"})
            self._reachable = True
        await self._check_epoch()
        runners = await self._say_alive()
        self.holders = await self.leases.holders(self.accounts)
        share = math.ceil(sum(Fraction(1, runners.get(a, 1)) for a in self.accounts))
        overdue = await self._unheld_for_a_round()
        rooms = dict(self._rooms)  # (what is left of each: one account each room)
        for account_id in self.accounts:
            if self._stopping:
                break
            if account_id in self.held or account_id in self.stopping:
                continue
            if self.holders.get(account_id) is not None or self._waits_retry(account_id):
                continue
            beyond_share = len(self.held.keys() - self._kept) >= share
            # beyond the share: an account another gateway has room for is left for it (it
            # fills that room: no kept account is handed over for it too); else only one
            # nobody took for a round (liveness first). Within it: one left for a gateway
            # with room holding fewer than this one (taken here, it would be handed over
            # to even the spread out: see _even_out)
            if beyond_share:
                left = self._room_elsewhere(account_id, rooms) or account_id not in overdue
            else:
                left = self._room_elsewhere(account_id, rooms, holding_under=len(self.held))
            if left:
                continue
            lease = await self.leases.acquire(account_id)
            if lease is not None:
                if beyond_share:
                    self._kept.add(account_id)
                await self._take(lease)
        await self._hand_over_after_outage()
        await self._hand_over_extra(share, runners)
        await self._hand_over_kept(rooms)
        await self._even_out(rooms)
        await self._say_room(share)
        await self._write_status()
        await self._learn_peer_ids()

    async def _say_alive(self) -> dict[str, int]:
        """Say this gateway is alive and which accounts it may run; each of its accounts
        with the number of live gateways that may run it (this one included)."""
        seconds, micros = await self._r.time()
        server_now = self._redis_now = int(seconds) + int(micros) / 1e6
        self._redis_ahead = server_now - self.clock.now()
        # one transaction: whoever sees this gateway alive sees which accounts it may run
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(self.keys.members, self.gateway_id, json.dumps(self.accounts))
        pipe.hset(self.keys.configs, self.gateway_id, json.dumps(self.config_hashes))
        pipe.zadd(self.keys.gateways, {self.gateway_id: server_now + self.ttl_s})
        pipe.zremrangebyscore(self.keys.gateways, "-inf", server_now)
        pipe.zrange(self.keys.gateways, 0, -1)
        pipe.hgetall(self.keys.members)
        pipe.hgetall(self.keys.configs)
        pipe.hgetall(self.keys.rooms)
        *_, alive, published, configs, rooms = await pipe.execute()
        members: dict[str, frozenset[str] | None] = {
            # (a gateway that does not say its accounts may run any)
            gateway: frozenset(json.loads(published[gateway])) if gateway in published else None
            for gateway in alive
        }
        gone = [gateway for gateway in published if gateway not in members]
        if gone:
            await self._r.hdel(self.keys.members, *gone)
        for key, hashed in ((self.keys.configs, configs), (self.keys.rooms, rooms)):
            gone = [gateway for gateway in hashed if gateway not in members]
            if gone:
                await self._r.hdel(key, *gone)
        self._read_rooms({g: rooms[g] for g in members if g in rooms and g != self.gateway_id})
        self._say_configs_differ({g: configs[g] for g in members if g in configs})
        if members != self._members:  # gateways came or went: shares are new
            self._members = members
            self._kept.clear()
        runners = {a: 1 for a in self.accounts}  # (this gateway)
        for gateway, accounts in members.items():
            if gateway == self.gateway_id:
                continue
            for account_id in self.accounts:
                if accounts is None or account_id in accounts:
                    runners[account_id] += 1
        return runners

    def _say_configs_differ(self, configs: dict[str, str]) -> None:
        """Say once each account another live gateway runs by another config (``configs``:
        each gateway's published hashes; one that publishes none, an older build, is not
        compared). Whichever gateway holds an account runs it by its own config."""
        for gateway, published in configs.items():
            if gateway == self.gateway_id:
                continue
            try:
                theirs = json.loads(published)
            except ValueError:
                continue
            if not isinstance(theirs, dict):
                continue
            for account_id, mine in self.config_hashes.items():
                other = theirs.get(account_id)
                if other is None or other == mine:
                    continue
                said = (gateway, account_id, str(other))
                if said in self._differs_said:
                    continue
                self._differs_said.add(said)
                log.warning(
                    "gateway %s runs this account by another config (its hash %s, this "
                    "gateway's %s): the account runs by the config of whichever gateway "
                    "holds it; give every gateway of the cluster the same config "
                    "reason=config_differs",
                    gateway,
                    shown(str(other), 64),
                    mine,
                    extra={"account": account_id},
                )

    async def _unheld_for_a_round(self) -> set[str]:
        """The accounts nobody has held since this gateway's previous round or longer (an
        account taken and released between two rounds was held: its fencing token says)."""
        now = self.clock.now()
        unheld = sorted(
            a
            for a in self.accounts
            if self.holders.get(a) is None and a not in self.held and a not in self.stopping
        )
        for account_id in list(self._unheld_since):
            if account_id not in unheld:
                del self._unheld_since[account_id]
        if not unheld:
            return set()
        tokens = await self._r.mget([self.keys.fence(a) for a in unheld])
        for account_id, token in zip(unheld, tokens, strict=True):
            seen = self._unheld_since.get(account_id)
            if seen is None or seen[1] != token:
                self._unheld_since[account_id] = (now, token)
        return {a for a in unheld if now - self._unheld_since[a][0] >= self.tick_s}

    def _read_rooms(self, published: dict[str, str]) -> None:
        """Each other live gateway's room, as it published it (none: an older build, or its
        first round under way; taken as no room, the rule before rooms were published).
        A room published more than half a TTL ago is left out too: its gateway stopped
        saying it (it died, or its rounds are stuck) and may never take what is left for
        it, while it stays among the gateways alive for a whole TTL after its last round
        (its own leases end no sooner than three quarters of a TTL after it died)."""
        self._rooms.clear()
        self._refuses.clear()
        self._held_by.clear()
        self._room_at.clear()
        oldest = self._redis_now - ROOM_TRUSTED_TTLS * self.ttl_s
        for gateway, value in published.items():
            try:
                room = json.loads(value)
                count, refuses, at = room["room"], room["refuses"], room["at"]
            except (ValueError, TypeError, KeyError):
                continue
            if not isinstance(at, int | float) or at < oldest:
                continue
            if isinstance(count, int) and count > 0 and isinstance(refuses, list):
                self._rooms[gateway] = count
                self._refuses[gateway] = frozenset(str(a) for a in refuses)
                self._room_at[gateway] = float(at)
                held = room.get("held")
                if isinstance(held, int) and not isinstance(held, bool):
                    self._held_by[gateway] = held
        for gateway in list(self._evened_for):
            if gateway not in self._room_at:
                del self._evened_for[gateway]

    def _room_elsewhere(
        self, account_id: str, rooms: dict[str, int], *, holding_under: int | None = None
    ) -> bool:
        """Another live gateway that may run the account has room for it (and holds fewer
        than ``holding_under`` accounts, when given): that room is counted as taken
        (``rooms`` holds what is left of each)."""
        for gateway in sorted(rooms):
            if rooms[gateway] <= 0 or not self._may_take(gateway, account_id):
                continue
            if holding_under is not None:
                theirs = self._held_by.get(gateway)
                if theirs is None or theirs >= holding_under:
                    continue
            rooms[gateway] -= 1
            return True
        return False

    def _may_take(self, gateway: str, account_id: str) -> bool:
        """``gateway`` may run the account and its start did not fail there."""
        accounts = self._members.get(gateway)
        may_run = accounts is None or account_id in accounts
        return may_run and account_id not in self._refuses.get(gateway, frozenset())

    async def _even_out(self, rooms: dict[str, int]) -> None:
        """Hand one account to another gateway that holds at least two fewer than this one
        and has room for it (shares are rounded up: nine accounts on four gateways, three
        each, left the fourth idle when the others filled theirs): the spread ends within
        one account a gateway, and nothing moves back (the difference only shrinks). Once
        a round, and once for each room a gateway says (a room read again before it said
        a new one may be full already)."""
        mine = len(self.held)
        for gateway in sorted(rooms, key=lambda g: (self._held_by.get(g, mine), g)):
            theirs = self._held_by.get(gateway)
            if theirs is None or theirs > mine - 2 or rooms[gateway] <= 0:
                continue
            if self._evened_for.get(gateway) == self._room_at[gateway]:
                continue
            for account_id in sorted(self.held):
                if account_id in self._kept or account_id in self.stopping:
                    continue
                if self._may_take(gateway, account_id):
                    rooms[gateway] -= 1
                    self._evened_for[gateway] = self._room_at[gateway]
                    await self._hand_over(account_id, HANDOVER_GRACE_S)
                    return

    async def _hand_over_kept(self, rooms: dict[str, int]) -> None:
        """For each account kept beyond the share, hand one over to another gateway that
        says it has room (it was slow to take it: it gets its share), room that no free
        account left for it fills (``rooms``: what the round left of each). The kept
        account itself when that gateway may run it and does not refuse it; else another
        this gateway holds, and the kept one counts in the share in its place (a gateway
        limited to other accounts, or whose start of the kept one failed, still gets its
        share)."""
        for kept in sorted(self._kept):
            if kept not in self.held or kept in self.stopping:
                continue
            others = sorted(a for a in self.held if a not in self._kept and a not in self.stopping)
            for account_id in (kept, *others):
                if self._room_elsewhere(account_id, rooms):
                    self._kept.discard(kept)  # (handed over, or in the share now)
                    await self._hand_over(account_id, HANDOVER_GRACE_S)
                    break

    async def _say_room(self, share: int) -> None:
        """Publish how many more accounts this gateway takes at its share, the accounts
        whose start failed here (no room here for those), and Redis's time now (a room
        that grew old is not waited for: see _read_rooms; a round slow to start accounts
        publishes a room as new as one that was quick)."""
        room = {
            "room": max(0, share - len(self.held)),
            "refuses": sorted(self._failed_here),
            "held": len(self.held),
            "at": self.clock.now() + self._redis_ahead,
        }
        await self._r.hset(self.keys.rooms, self.gateway_id, json.dumps(room))

    def _waits_retry(self, account_id: str) -> bool:
        retry_at = self._retry_at.get(account_id)
        if retry_at is None:
            return False
        if self.clock.now() < retry_at:
            return True
        del self._retry_at[account_id]
        return False

    async def _hand_over_extra(self, share: int, runners: dict[str, int]) -> None:
        """Hand over what this gateway holds beyond its share: only accounts another live
        gateway may run, and not one it kept because nobody else took it."""
        extra = len(self.held.keys() - self._kept) - share
        if extra <= 0:
            return
        movable = sorted(
            a
            for a in self.held
            if a not in self._kept and a not in self.stopping and runners.get(a, 1) > 1
        )
        for account_id in movable[-extra:]:
            await self._hand_over(account_id, HANDOVER_GRACE_S)

    async def _hand_over_after_outage(self) -> None:
        """Hand over each held account a write of which failed while Redis was out of
        reach or full, or a read that broke a turn (it answers again: this round reached
        it). What its turns could not write then (a reply's mark as being sent, a turn's
        journal) waits in the store for the account's next start, which the hand-over
        brings now: here or on another gateway, from the shared session."""
        failed = sorted(
            a for a, h in self.held.items() if h.guard.store_failed and a not in self.stopping
        )
        for account_id in failed:
            log.warning(
                "a write to Redis, or a read that broke a turn, failed while it was out of "
                "reach or full: the account is handed over now that Redis answers, so that "
                "what waits in the store for its next start goes out (here or on another "
                "gateway) reason=handover_after_outage",
                extra={"account": account_id},
            )
        await asyncio.gather(*(self._hand_over(a, HANDOVER_GRACE_S) for a in failed))

    async def _renew(self) -> None:
        await asyncio.gather(*(self._renew_one(a, h) for a, h in list(self.held.items())))

    async def _renew_one(self, account_id: str, held: HeldAccount) -> None:
        from redis.exceptions import RedisError

        asked = self.clock.now()
        try:
            renewed = await self.leases.renew(held.guard.lease)
        except (RedisError, OSError) as exc:
            held.guard.failure = exc  # (what a proactive send that stops waiting says)
            raise
        if renewed:
            held.guard.confirmed(asked)
            held.renewed_at = asked
            return
        if self.held.get(account_id) is not held:
            return
        log.warning(
            "lease lost (another gateway runs the account now, or it expired while "
            "Redis could not be reached): the account stops here reason=lease_lost",
            extra={"account": account_id},
        )
        held.guard.lose()
        if account_id in self.stopping:  # (being handed over: that stop goes on)
            return
        self._forget(account_id)
        await self._stopped(account_id, 0.0)

    def _forget(self, account_id: str) -> None:
        del self.held[account_id]
        self._kept.discard(account_id)

    async def _take(self, lease: Lease) -> None:
        guard = LeaseGuard(lease, self.leases, self.clock, self.ttl_s)
        held = HeldAccount(guard, renewed_at=self.clock.now())
        guard.on_lost = lambda: self._write_refused(lease.account_id, held)
        self.held[lease.account_id] = held
        log.info(
            "account taken: lease %d, this gateway %s reason=lease_taken",
            lease.token,
            self.gateway_id,
            extra={"account": lease.account_id},
        )
        try:
            held.status = await self._start_account(lease.account_id, guard)
            self._failed_here.discard(lease.account_id)
        except Exception as exc:  # (a Redis blip while building it, a transport's error)
            log.error(
                "account could not start: %s; its lease is released (another gateway may "
                "take it at once, this one tries again in %d rounds) reason=start_failed",
                _reason(exc),
                START_RETRY_TICKS,
                extra={"account": lease.account_id},
            )
            self._retry_at[lease.account_id] = self.clock.now() + START_RETRY_TICKS * self.tick_s
            self._failed_here.add(lease.account_id)
            await self._hand_over(lease.account_id, 0.0)

    def _write_refused(self, account_id: str, held: HeldAccount) -> None:
        """Redis refused a write of the account's lease (another gateway holds it): the
        renewal that finds it gone, and stops the account, runs now."""
        task = asyncio.get_running_loop().create_task(self._lost_now(account_id, held))
        self._refusals.add(task)
        task.add_done_callback(self._refusals.discard)

    async def _lost_now(self, account_id: str, held: HeldAccount) -> None:
        with contextlib.suppress(Exception):  # (unreachable: the renewals go on)
            await self._renew_one(account_id, held)

    async def _hand_over(self, account_id: str, grace_s: float) -> None:
        """Stop the account (its replies in flight get ``grace_s``), then release its
        lease. In a task of its own: a stop of the gateway that cancels the round under
        way waits for it (see stop) instead of cutting the account's stop half way."""
        held = self.held.get(account_id)
        if held is None or account_id in self.stopping:  # (stopped meanwhile: lost)
            return
        task = asyncio.ensure_future(self._give_up(account_id, held, grace_s))
        self._hand_overs.add(task)
        task.add_done_callback(self._hand_overs.discard)
        await asyncio.shield(task)

    async def _give_up(self, account_id: str, held: HeldAccount, grace_s: float) -> None:
        try:
            # still held while it stops: its lease is renewed through the grace
            await self._stopped(account_id, grace_s)
        except Exception as exc:  # (its runner is gone all the same: so is its lease)
            log.error(
                "account did not stop cleanly: %s; its lease is released all the same "
                "reason=stop_failed",
                _reason(exc),
                extra={"account": account_id},
            )
        finally:
            if self.held.get(account_id) is held:  # (no longer renewed, whatever happens)
                self._forget(account_id)
        try:
            await self.leases.release(held.guard.lease)
            await self._r.publish(self.keys.released, account_id)  # the others take it now
        except Exception as exc:  # it expires on its own within the TTL
            log.warning("lease not released: %s", _reason(exc), extra={"account": account_id})
        held.guard.lose()
        log.info("account handed over reason=lease_released", extra={"account": account_id})

    async def _stopped(self, account_id: str, grace_s: float) -> None:
        self.stopping.add(account_id)
        try:
            await self._stop_account(account_id, grace_s)
        finally:
            self.stopping.discard(account_id)

    async def _write_status(self) -> None:
        if not self.held:
            return
        rows = {
            held.guard.lease: json.dumps({"holder": self.gateway_id, **held.status()})
            for held in self.held.values()
        }
        await self._statuses.write(rows, self.ttl_s)  # each only while its lease is ours

    async def _learn_peer_ids(self) -> None:
        """The WeChat id of each account another gateway holds, from the status it wrote
        (one read a round, for every such account)."""
        others = [a for a in self.peers if a not in self.held]
        if self.own_accounts is None or not others:
            return
        values = await self._r.mget([self.keys.status(a) for a in others])
        for account_id, value in zip(others, values, strict=True):
            if value is None:  # nobody holds it, or its holder has not written yet
                continue
            try:
                user_id = json.loads(value).get("user_id")
            except (ValueError, AttributeError):  # (not a status: nothing to learn)
                continue
            if isinstance(user_id, str) and user_id:
                self.own_accounts.logged_in(account_id, user_id)

    async def _check_epoch(self) -> None:
        """A random id kept in Redis: when it is gone while we knew it, Redis restarted
        without its data (pairing approvals, history, sessions: all lost)."""
        epoch = await self._r.get(self.keys.epoch)
        if epoch is None:
            epoch = uuid.uuid4().hex
            if not await self._r.set(self.keys.epoch, epoch, nx=True):
                epoch = await self._r.get(self.keys.epoch)
            elif self._epoch is not None:
                log.error(
                    "Redis lost its data (it restarted without persistence): pairing "
                    "approvals, history, dedupe marks and logins are gone; set appendonly "
                    "yes (docs/cluster.md) reason=redis_data_lost",
                    extra={"account": "-"},
                )
        self._epoch = str(epoch)

    def fenced(self, shared: SharedRedis, account_id: str) -> SharedRedis:
        """``shared`` with the account's lease, for a transport to check as it writes."""
        held = self.held.get(account_id)
        if held is None:
            return shared
        fence = held.guard.fence()
        return dataclasses.replace(
            shared,
            lease_key=fence.key,
            lease_value=fence.value,
            on_lost=fence.on_lost,
            before_send=held.guard.check_here,
        )


def _answered(exc: BaseException) -> bool:
    """Redis answered with an error (it is reachable): full, a command not allowed."""
    from redis.exceptions import ResponseError

    return isinstance(exc, ResponseError)


def _read_only(exc: BaseException) -> bool:
    from redis.exceptions import ReadOnlyError

    return isinstance(exc, ReadOnlyError)


def _full(exc: BaseException) -> bool:
    from redis.exceptions import OutOfMemoryError

    return isinstance(exc, OutOfMemoryError)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
