"""Several gateways on one Redis store, each account run by exactly one of them
(docs/cluster.md): leases with fencing tokens, the loop that takes and hands over
accounts, the fence before each send."""

from __future__ import annotations

from wechat_sdk.cluster.leases import LEASE_TTL_S, Lease, LeaseKeys, Leases

__all__ = ["LEASE_TTL_S", "Lease", "LeaseKeys", "Leases"]
