"""The fence on every send and every write of an account held by lease.

A send goes out only while this gateway holds the account's lease, confirmed by Redis
within the lease's time to live and checked in Redis (its fencing token) right before
it (:class:`FencedPuppet`); a proactive send, whose caller waits for its answer, waits
for that at most the lease's TTL. Every write for the account (history, dedupe marks,
outbox, the transport's session state, its status) is refused by Redis itself unless the
lease key still holds this gateway's lease, in the same Lua script as the write
(:mod:`wechat_sdk.stores.redis.fencing`; :func:`held_store` gives the store so fenced).
A refused write raises :class:`LeaseLost` and stops the account here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

from wechat_sdk.outbound.delivery import is_proactive
from wechat_sdk.puppet import OutboundFile, SendError
from wechat_sdk.stores.base import OutboxItem, OutboxState, OutboxStore, Store
from wechat_sdk.stores.redis.fencing import Fence, LeaseLost
from wechat_sdk.stores.redis.store import RedisStore, unreachable_reason

if TYPE_CHECKING:
    from wechat_sdk.clock import Clock
    from wechat_sdk.cluster.leases import Lease, LeaseKeys, Leases
    from wechat_sdk.puppet import Puppet

__all__ = [
    "FencedOutbox",
    "FencedPuppet",
    "LeaseGuard",
    "LeaseLost",
    "StatusWriter",
    "held_store",
]

# KEYS: n accounts' status keys, then their lease keys. ARGV: the ttl in ms, then the n
# leases' values (this gateway's), then the n statuses. Each written only while its lease
# is ours: an old holder that wakes up does not show itself as the holder.
_WRITE_STATUSES: Final = """
local n = #KEYS / 2
for i = 1, n do
  if redis.call('GET', KEYS[n + i]) == ARGV[1 + i] then
    redis.call('SET', KEYS[i], ARGV[1 + n + i], 'PX', ARGV[1])
  end
end
return 0
"""

#: part of the TTL a confirmation is not trusted for (the clocks' drift, the round trip)
_MARGIN = 0.2


class LeaseGuard:
    """One held lease, as this gateway knows it: valid until a renewal's time plus the
    TTL (less a margin), counted from before the renewal was asked."""

    def __init__(self, lease: Lease, leases: Leases, clock: Clock, ttl_s: float) -> None:
        self.lease = lease
        self.leases = leases
        self.clock = clock
        self.ttl_s = ttl_s
        self.valid_until = clock.now() + ttl_s * (1 - _MARGIN)
        self.lost = False
        #: why Redis last failed to confirm the lease (a renewal's error, or a check's),
        #: until it confirms it again: what a proactive send that stops waiting says
        self.failure: BaseException | None = None
        self._renewed = asyncio.Event()
        #: told when Redis refused a write of this lease (the coordinator stops the
        #: account at once, as when a renewal finds the lease gone)
        self.on_lost: Callable[[], None] | None = None
        #: a write of the account's store failed, Redis out of reach or full (or a read
        #: did and broke a turn: Fence.failed is told either): what its work could not
        #: write then waits in the store for the account's next start
        #: (the coordinator starts it again once Redis answers)
        self.store_failed = False

    def fence(self) -> Fence:
        """The lease as a write checks it in Redis (its key, this gateway's value)."""
        return Fence(
            self.lease.account_id,
            self.leases.keys.lease(self.lease.account_id),
            self.lease.value,
            on_lost=self._refused,
            on_failed=self._store_failed,
        )

    def _store_failed(self) -> None:
        self.store_failed = True

    def _refused(self) -> None:
        """Redis refused a write: the lease is another's; sends stop at once."""
        if not self.lost:
            self.lose()
            if self.on_lost is not None:
                self.on_lost()

    def confirmed(self, asked_at: float) -> None:
        """Redis said the lease is ours, in answer to a request made at ``asked_at``."""
        self.valid_until = asked_at + self.ttl_s * (1 - _MARGIN)
        self.failure = None
        self._renewed.set()
        self._renewed = asyncio.Event()

    def valid(self) -> bool:
        return not self.lost and self.clock.now() < self.valid_until

    async def wait_valid(self, until: float | None = None) -> None:
        """Return once the lease is confirmed valid; SendError when it was lost, or
        (``store_unavailable``) when it is still not confirmed at ``until`` (clock time)."""
        while not self.valid():
            if self.lost:
                raise _lease_lost()
            renewed = self._renewed
            if until is None:
                await renewed.wait()
                continue
            left = until - self.clock.now()
            if left <= 0:
                raise self._unconfirmed()
            woken = asyncio.ensure_future(renewed.wait())
            waited = asyncio.ensure_future(self.clock.sleep(left))
            try:
                await asyncio.wait({woken, waited}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
                waited.cancel()

    def _unconfirmed(self) -> SendError:
        """A proactive send's wait is over: not sent, saying why Redis did not confirm."""
        from redis.exceptions import TimeoutError as RedisTimeoutError

        cause = self.failure or RedisTimeoutError("no answer from Redis")
        error = SendError(
            f"the account's lease could not be confirmed in Redis within {self.ttl_s:g} s "
            f"({unreachable_reason(cause)}): not sent",
            transient=False,
            code="store_unavailable",
        )
        error.__cause__ = cause  # (the store's own error: the HTTP API words it by its rule)
        return error

    def check_here(self) -> None:
        """Right before a send's request leaves, by this gateway's clock alone (no round
        trip): a lost lease is a final SendError; one not confirmed lately (this gateway
        was paused since :meth:`check`, or Redis is slow) a transient one, so the send
        waits for :meth:`check` again instead of going out after another took over."""
        if self.lost:
            raise _lease_lost()
        if not self.valid():
            raise SendError(
                "the account's lease is not confirmed here lately (was this gateway "
                "paused?): not sent now, tried again once it is",
                transient=True,
                code="lease_unconfirmed",
            )

    def lose(self) -> None:
        """The lease is gone (taken over or expired): sends waiting are refused."""
        self.lost = True
        self._renewed.set()

    async def check(self) -> None:
        """Before a send: valid here, and still this lease in Redis (the fencing token).

        A reply waits for the lease as long as it takes. A proactive send (its caller
        waits for the answer: :func:`~wechat_sdk.outbound.delivery.proactive`) waits at
        most the TTL: a lease Redis could not confirm for that long has expired there, so
        the send could never go out from this gateway; it is refused for good
        (``store_unavailable``), not sent.
        """
        from redis.exceptions import RedisError

        until = self.clock.now() + self.ttl_s if is_proactive() else None
        while True:
            await self.wait_valid(until)
            try:
                holds = await self.leases.holds(self.lease)
                break
            except (RedisError, OSError) as exc:
                # Redis unreachable or stalled: wait for the next confirmation, ask again
                # (until the lease is confirmed ours, or lost: never a send unchecked)
                self.failure = exc
                self.valid_until = min(self.valid_until, self.clock.now())
        if not holds:
            self.lose()
            await self.wait_valid()  # (raises lease_lost)


def _lease_lost() -> SendError:
    return SendError(
        "this gateway no longer holds the account's lease: not sent (another gateway runs "
        "the account now)",
        transient=False,
        code="lease_lost",
    )


class FencedPuppet:
    """A puppet whose sends go out only while :class:`LeaseGuard` allows (the rest of the
    puppet as it is)."""

    def __init__(self, puppet: Puppet, guard: LeaseGuard) -> None:
        self._puppet = puppet
        self.guard = guard

    async def send_text(self, conversation_id: str, text: str, *args: Any, **kw: Any) -> Any:
        await self.guard.check()
        return await self._puppet.send_text(conversation_id, text, *args, **kw)

    async def send_file(self, conversation_id: str, file: OutboundFile, *a: Any, **kw: Any) -> Any:
        await self.guard.check()
        return await self._puppet.send_file(conversation_id, file, *a, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._puppet, name)


def held_store(store: Store, guard: LeaseGuard) -> Store:
    """``store`` as the holder of ``guard``'s lease writes it: on Redis, every write for
    the account fenced in Redis by the lease
    (:class:`~wechat_sdk.stores.redis.store.FencedRedisStore`); another store (a test's:
    leases are kept only with a Redis store) gets its outbox fenced by the lease as this
    gateway last confirmed it (:class:`FencedOutbox`)."""
    if isinstance(store, RedisStore):
        return store.fenced(guard.fence())
    return cast(Store, _LocallyFenced(store, guard))


class _LocallyFenced:
    """A store that is not Redis, its outbox fenced by the local view of the lease."""

    def __init__(self, store: Store, guard: LeaseGuard) -> None:
        self._store = store
        self.outbox = FencedOutbox(store.outbox, guard)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class FencedOutbox:
    """An outbox not on Redis for an account held by lease: its writes refused once the
    lease is lost or unconfirmed here, so an old holder that wakes up after another took
    the account over cannot put back work the new holder has done (it would go out
    twice). On Redis the check is Redis's own, in each write (:func:`held_store`)."""

    def __init__(self, outbox: OutboxStore, guard: LeaseGuard) -> None:
        self._outbox = outbox
        self.guard = guard

    def _fence(self) -> None:
        if not self.guard.valid():
            raise LeaseLost(self.guard.lease.account_id, "outbox write")

    def add(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        self._fence()
        return self._outbox.add(items)

    def items(self, account_id: str) -> list[OutboxItem]:
        return self._outbox.items(account_id)

    def set_state(self, item_id: int, state: OutboxState) -> None:
        self._fence()
        self._outbox.set_state(item_id, state)

    def delete(self, item_id: int) -> bool:
        self._fence()
        return self._outbox.delete(item_id)

    def replace(self, old: Sequence[OutboxItem], new: Sequence[OutboxItem]) -> list[OutboxItem]:
        self._fence()
        return self._outbox.replace(old, new)


class StatusWriter:
    """Writes the status of each account this gateway holds (``gateway status`` reads
    it on any machine), all in one Lua script, each only while Redis holds its lease."""

    def __init__(self, client: Any, keys: LeaseKeys) -> None:
        self.keys = keys
        self._write = client.register_script(_WRITE_STATUSES)

    async def write(self, rows: dict[Lease, str], ttl_s: float) -> None:
        """``rows``: each held lease and its account's status (JSON), kept ``ttl_s``."""
        if not rows:
            return
        leases = list(rows)
        await self._write(
            keys=[
                *(self.keys.status(lease.account_id) for lease in leases),
                *(self.keys.lease(lease.account_id) for lease in leases),
            ],
            args=[
                max(1, int(ttl_s * 1000)),
                *(lease.value for lease in leases),
                *(rows[lease] for lease in leases),
            ],
        )
