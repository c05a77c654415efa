"""The fence before a send: a gateway sends for an account only while it holds the
account's lease, confirmed by Redis within the lease's time to live."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from wechat_sdk.puppet import OutboundFile, SendError
from wechat_sdk.stores.base import OutboxItem, OutboxState, OutboxStore

if TYPE_CHECKING:
    from wechat_sdk.clock import Clock
    from wechat_sdk.cluster.leases import Lease, Leases
    from wechat_sdk.puppet import Puppet

__all__ = ["FencedOutbox", "FencedPuppet", "LeaseGuard", "LeaseLost"]

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
        self._renewed = asyncio.Event()

    def confirmed(self, asked_at: float) -> None:
        """Redis said the lease is ours, in answer to a request made at ``asked_at``."""
        self.valid_until = asked_at + self.ttl_s * (1 - _MARGIN)
        self._renewed.set()
        self._renewed = asyncio.Event()

    def valid(self) -> bool:
        return not self.lost and self.clock.now() < self.valid_until

    async def wait_valid(self) -> None:
        """Return once the lease is confirmed valid; SendError when it was lost."""
        while not self.valid():
            if self.lost:
                raise SendError(
                    "this gateway no longer holds the account's lease: not sent (another "
                    "gateway runs the account now)",
                    transient=False,
                    code="lease_lost",
                )
            renewed = self._renewed
            await renewed.wait()

    def lose(self) -> None:
        """The lease is gone (taken over or expired): sends waiting are refused."""
        self.lost = True
        self._renewed.set()

    async def check(self) -> None:
        """Before a send: valid here, and still this lease in Redis (the fencing token)."""
        await self.wait_valid()
        try:
            holds = await self.leases.holds(self.lease)
        except Exception:  # Redis unreachable: wait for the next confirmation
            self.valid_until = min(self.valid_until, self.clock.now())
            await self.wait_valid()
            holds = await self.leases.holds(self.lease)
        if not holds:
            self.lose()
            await self.wait_valid()  # (raises lease_lost)


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


class LeaseLost(RuntimeError):
    """A write refused: this gateway no longer holds (or cannot confirm) the account."""


class FencedOutbox:
    """The store's outbox for an account held by lease: its writes refused once the lease
    is lost or unconfirmed, so an old holder that wakes up after another took the account
    over cannot put back work the new holder has done (it would go out twice)."""

    def __init__(self, outbox: OutboxStore, guard: LeaseGuard) -> None:
        self._outbox = outbox
        self.guard = guard

    def _fence(self) -> None:
        if not self.guard.valid():
            raise LeaseLost(
                f"the lease of account {self.guard.lease.account_id} is lost or unconfirmed"
            )

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
