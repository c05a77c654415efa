"""Account leases in Redis: each account run by exactly one gateway at a time.

A lease is one key per account, ``<namespace>:<channel>:lease:<account>``, holding
``<gateway id> <fencing token>`` with a time to live (``LEASE_TTL_S``, 15 s by default).
Its holder renews it every quarter of that; a gateway that stops cleanly deletes it (the
account is taken over at once); one that dies lets it expire (taken over within the TTL).
Each new holder gets a new fencing token from ``...:fence:<account>`` (INCR): a holder
checks that the lease still holds its token before each send, and Redis checks it in each
write for the account (:mod:`wechat_sdk.stores.redis.fencing`), so an old holder that was
paused past its lease (SIGSTOP, a long GC, a partition) and wakes up cannot act.

Every operation is one Lua script: compare and set, atomic on the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from wechat_sdk.stores.redis.keys import Keys, escape

__all__ = ["LEASE_TTL_S", "Lease", "LeaseKeys", "Leases"]

#: seconds a lease lives without renewal: a dead gateway's accounts move after at most this
LEASE_TTL_S: Final = 15.0

# KEYS: lease, fence. ARGV: gateway id, ttl ms. Returns the new token, or 0 when held.
_ACQUIRE: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
return token
"""

# KEYS: lease. ARGV: "<gateway> <token>", ttl ms. 1 when still ours (renewed), else 0.
_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: lease. ARGV: "<gateway> <token>". Deletes it only when it is ours.
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaseKeys:
    """The cluster's keys under the store's namespace and channel."""

    def __init__(self, keys: Keys) -> None:
        self.prefix = keys.prefix

    def lease(self, account_id: str) -> str:
        """string: ``<gateway> <token>``, expiring: who runs the account"""
        return f"{self.prefix}lease:{escape(account_id)}"

    def fence(self, account_id: str) -> str:
        """string: the account's last fencing token (INCR)"""
        return f"{self.prefix}fence:{escape(account_id)}"

    @property
    def gateways(self) -> str:
        """sorted set: gateway id -> until when it is alive (its heartbeat)"""
        return f"{self.prefix}gateways"

    @property
    def members(self) -> str:
        """hash: gateway id -> the accounts it may run (a JSON list; its ``--accounts``)"""
        return f"{self.prefix}gateway-accounts"

    @property
    def configs(self) -> str:
        """hash: gateway id -> a hash of each account's config it runs by (a JSON object)"""
        return f"{self.prefix}gateway-configs"

    @property
    def rooms(self) -> str:
        """hash: gateway id -> its room, as its last round left it (a JSON object: ``room``,
        how many more accounts it takes at its share; ``refuses``, the accounts whose start
        failed there; ``held``, how many it holds; ``at``, Redis's time as it was published)"""
        return f"{self.prefix}gateway-rooms"

    def status(self, account_id: str) -> str:
        """string: the account's status as its holder last wrote it (JSON, expiring)"""
        return f"{self.prefix}account-status:{escape(account_id)}"

    @property
    def released(self) -> str:
        """pub/sub channel: an account id, each time a gateway released its lease"""
        return f"{self.prefix}released"

    @property
    def epoch(self) -> str:
        """string: a random id written once: gone means Redis lost its data"""
        return f"{self.prefix}epoch"


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease this gateway holds: the account, and its fencing token."""

    account_id: str
    gateway_id: str
    token: int

    @property
    def value(self) -> str:
        return f"{self.gateway_id} {self.token}"


class Leases:
    """Acquire, renew, check and release account leases (redis.asyncio client)."""

    def __init__(self, client: Any, keys: LeaseKeys, gateway_id: str, ttl_s: float) -> None:
        self._r = client
        self.keys = keys
        self.gateway_id = gateway_id
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    async def acquire(self, account_id: str) -> Lease | None:
        """The account's lease when nobody holds it, else None."""
        k = self.keys
        token = int(
            await self._acquire(
                keys=[k.lease(account_id), k.fence(account_id)],
                args=[self.gateway_id, self.ttl_ms],
            )
        )
        return Lease(account_id, self.gateway_id, token) if token else None

    async def renew(self, lease: Lease) -> bool:
        """Extend the lease; False when it is no longer ours (expired, taken over)."""
        return bool(
            await self._renew(
                keys=[self.keys.lease(lease.account_id)], args=[lease.value, self.ttl_ms]
            )
        )

    async def holds(self, lease: Lease) -> bool:
        """True while the lease in Redis is this one (the check before a send)."""
        return bool(await self._r.get(self.keys.lease(lease.account_id)) == lease.value)

    async def release(self, lease: Lease) -> None:
        """Give the lease up (a clean stop: another gateway takes the account at once)."""
        await self._release(keys=[self.keys.lease(lease.account_id)], args=[lease.value])

    async def holders(self, account_ids: list[str]) -> dict[str, str | None]:
        """Each account's holder (a gateway id), None when nobody holds it."""
        if not account_ids:
            return {}
        values = await self._r.mget([self.keys.lease(a) for a in account_ids])
        return {
            a: (str(v).rsplit(" ", 1)[0] if v is not None else None)
            for a, v in zip(account_ids, values, strict=True)
        }
