"""The cluster loop of one gateway: which accounts it runs, by lease.

Every ``tick`` (a second): the gateway says it is alive (``gateways``, with Redis's own
time, so machines' clocks need not agree), takes free accounts up to its fair share (the
enabled accounts divided by the gateways alive, rounded up), hands over the accounts it
holds beyond that share (stopped, then released: another gateway takes each at once), and
writes each account's status for ``gateway status`` on any machine. In a task of its own,
every quarter of the TTL, it renews its leases and stops an account whose lease it lost.

Redis unreachable: nothing is renewed, so sends wait (:class:`~.fence.LeaseGuard`), and
accounts keep what they hold; when Redis answers again, a lease that is still ours goes
on, one that expired meanwhile stops its account. A Redis that came back empty (restarted
without persistence) is said once, at error level.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from wechat_sdk.clock import Clock
from wechat_sdk.cluster.fence import LeaseGuard, StatusWriter
from wechat_sdk.cluster.leases import LEASE_TTL_S, Lease, LeaseKeys, Leases
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


class ClusterCoordinator:
    """Runs the accounts whose leases this gateway holds.

    ``start_account(id, guard)`` starts an account (returning a function giving its status
    as JSON); ``stop_account(id, grace_s)`` stops it (what it holds kept in the shared
    store, for the next holder).
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
    ) -> None:
        self._r = client
        self.keys = keys
        self.accounts = list(accounts)
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
        self._refusals: set[asyncio.Task[None]] = set()
        self._reachable = True
        self._epoch: str | None = None
        #: every account's holder as last read (``gateway status``)
        self.holders: dict[str, str | None] = {}

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Check Redis, note its epoch, run one round at once, then the loop."""
        await self._check_epoch()
        await self._round()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._loop(), name="cluster")
        # renewals in a task of their own: taking accounts up never delays them
        self._renewing = loop.create_task(self._renew_loop(), name="cluster-renew")
        self._listening = loop.create_task(self._listen(), name="cluster-listen")

    async def stop(self, grace_s: float = HANDOVER_GRACE_S) -> None:
        """Stop every held account (replies in flight get ``grace_s``) and release its
        lease: other gateways take them at once."""
        self._stopping = True
        self._released.set()  # (wakes the loop between two rounds)
        for task in (self._task, self._renewing, self._listening):
            if task is not None:
                await self._cancelled(task)
        self._task = self._renewing = self._listening = None
        # an account a refused write is stopping now: that stop ends first (it was lost)
        await asyncio.gather(*self._refusals, return_exceptions=True)
        await asyncio.gather(*(self._hand_over(a, grace_s) for a in list(self.held)))
        try:
            await self._r.zrem(self.keys.gateways, self.gateway_id)
        except Exception as exc:
            log.warning("could not say goodbye to Redis: %s", _reason(exc), extra={"account": "-"})
        await self._r.aclose()

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
                if self._reachable:
                    log.error(
                        "Redis unreachable: accounts stop sending and keep what they hold "
                        "until it answers again: %s reason=redis_unreachable",
                        _reason(exc),
                        extra={"account": "-"},
                    )
                self._reachable = False

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
        while not self._stopping:
            await self.clock.sleep(self.ttl_s / 4)
            with contextlib.suppress(Exception):  # (unreachable: the main loop says it)
                await self._renew()

    # ------------------------------------------------------------ one round

    async def _round(self) -> None:
        if not self._reachable:
            await self._r.ping()
            log.warning("Redis answers again reason=redis_back", extra={"account": "-"})
            self._reachable = True
        await self._check_epoch()
        seconds, micros = await self._r.time()
        server_now = int(seconds) + int(micros) / 1e6
        pipe = self._r.pipeline(transaction=False)
        pipe.zadd(self.keys.gateways, {self.gateway_id: server_now + self.ttl_s})
        pipe.zremrangebyscore(self.keys.gateways, "-inf", server_now)
        pipe.zcard(self.keys.gateways)
        alive = int((await pipe.execute())[2])
        self.holders = await self.leases.holders(self.accounts)
        share = math.ceil(len(self.accounts) / max(1, alive))
        for account_id in self.accounts:
            if len(self.held) >= share:
                break
            if account_id in self.held or account_id in self.stopping:
                continue
            if self.holders.get(account_id) is not None or self._stopping:
                continue
            lease = await self.leases.acquire(account_id)
            if lease is not None:
                await self._take(lease)
        extra = len(self.held) - share
        if extra > 0 and alive > 1:
            for account_id in sorted(self.held)[-extra:]:
                await self._hand_over(account_id, HANDOVER_GRACE_S)
        await self._write_status()

    async def _renew(self) -> None:
        await asyncio.gather(*(self._renew_one(a, h) for a, h in list(self.held.items())))

    async def _renew_one(self, account_id: str, held: HeldAccount) -> None:
        asked = self.clock.now()
        if await self.leases.renew(held.guard.lease):
            held.guard.confirmed(asked)
            held.renewed_at = asked
            return
        if self.held.get(account_id) is held:
            log.warning(
                "lease lost (another gateway runs the account now, or it expired while "
                "Redis could not be reached): the account stops here reason=lease_lost",
                extra={"account": account_id},
            )
            held.guard.lose()
            del self.held[account_id]
            await self._stopped(account_id, 0.0)

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
        held.status = await self._start_account(lease.account_id, guard)

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
        held = self.held.pop(account_id, None)
        if held is None:  # (stopped meanwhile: its lease was lost)
            return
        await self._stopped(account_id, grace_s)
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
            shared, lease_key=fence.key, lease_value=fence.value, on_lost=fence.on_lost
        )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
